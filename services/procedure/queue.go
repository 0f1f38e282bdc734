package procedure

// Waiting returns the step case c waits for under procedure p, and false
// once every step is complete (the case is decided). A queue of a role
// lists the open cases whose waiting step that role signs.
func Waiting(p *Procedure, c *Case) (Step, bool) {
	if p == nil || c == nil || c.State == StateDecided {
		return Step{}, false
	}
	s, done := currentStep(p, c)
	return s, !done
}

// Signed counts the distinct officials who have signed step of case c.
func Signed(c *Case, step string) int {
	seen := map[string]bool{}
	for _, r := range c.Steps {
		if r.Step == step && r.Official != "" {
			seen[r.Official] = true
		}
	}
	return len(seen)
}
