package charter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrQuorumNotMet is wrapped by Rule.Satisfied when the signers fall short.
var ErrQuorumNotMet = errors.New("quorum not met")

// Rule is the quorum an action needs.
//
// It is met by a set of distinct officials when at least Threshold of them
// hold one or more of the roles in Of, and when, for every role r in
// Require, Require[r] of them hold r — each official filling at most one
// required slot, so that one minister who is also CIO cannot stand in for
// both a required minister and a required CIO.
type Rule struct {
	Threshold int            `yaml:"threshold"`
	Of        []string       `yaml:"of"`
	Require   map[string]int `yaml:"require,omitempty"`
}

// Satisfied reports whether signers meet r. It is pure: signers are taken
// as already authenticated. Officials are counted once per id; officials
// holding none of the roles in Of count for nothing. The error wraps
// ErrQuorumNotMet and says everything that is missing.
func (r Rule) Satisfied(signers []Official) error {
	// Fail closed on a rule Validate would have rejected: a threshold of 0
	// would let anyone, or no one, act.
	if r.Threshold < 1 || len(r.Of) == 0 {
		return fmt.Errorf("%w: rule needs a threshold >= 1 and at least one role (threshold %d, of %v)", ErrQuorumNotMet, r.Threshold, r.Of)
	}
	eligible := r.eligible(signers)
	var missing []string
	if len(eligible) < r.Threshold {
		missing = append(missing, fmt.Sprintf("need %d of %s, have %d", r.Threshold, strings.Join(r.Of, ","), len(eligible)))
	}
	roles := r.requiredRoles()
	short := false
	for _, role := range roles {
		have := 0
		for _, o := range eligible {
			if o.HasRole(role) {
				have++
			}
		}
		if have < r.Require[role] {
			short = true
			missing = append(missing, fmt.Sprintf("need at least %d %s, have %d", r.Require[role], role, have))
		}
	}
	// Per-role counts can each be met while distinct officials still cannot
	// fill all slots at once; only the matching tells.
	if !short && len(roles) > 0 {
		slots, filled := r.match(eligible)
		if filled < slots {
			var want []string
			for _, role := range roles {
				want = append(want, fmt.Sprintf("%d %s", r.Require[role], role))
			}
			missing = append(missing, fmt.Sprintf("need %d distinct officials for %s, distinct signers fill only %d", slots, strings.Join(want, " and "), filled))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrQuorumNotMet, strings.Join(missing, "; "))
	}
	return nil
}

// eligible returns the distinct officials (by id, first occurrence wins)
// that hold at least one role in r.Of.
func (r Rule) eligible(signers []Official) []Official {
	seen := make(map[string]bool, len(signers))
	var out []Official
	for _, o := range signers {
		if seen[o.ID] {
			continue
		}
		seen[o.ID] = true
		if slices.ContainsFunc(r.Of, o.HasRole) {
			out = append(out, o)
		}
	}
	return out
}

func (r Rule) requiredRoles() []string {
	roles := make([]string, 0, len(r.Require))
	for role := range r.Require {
		roles = append(roles, role)
	}
	slices.Sort(roles)
	return roles
}

// match fills the required role slots with distinct officials by
// augmenting paths (Kuhn's algorithm) and returns how many slots there are
// and how many were filled. Rules are small (a handful of slots, tens of
// officials), so the simple O(slots·edges) algorithm is plenty.
func (r Rule) match(officials []Official) (slots, filled int) {
	var slotRole []string
	for _, role := range r.requiredRoles() {
		n := r.Require[role]
		if n < 0 {
			n = 0
		}
		// A required count larger than the officials present cannot be
		// filled anyway; capping keeps a hostile rule from allocating much.
		if n > len(officials)+1 {
			n = len(officials) + 1
		}
		for range n {
			slotRole = append(slotRole, role)
		}
	}
	owner := make([]int, len(officials)) // official index -> slot index, -1 if free
	for i := range owner {
		owner[i] = -1
	}
	var try func(slot int, seen []bool) bool
	try = func(slot int, seen []bool) bool {
		for oi, o := range officials {
			if seen[oi] || !o.HasRole(slotRole[slot]) {
				continue
			}
			seen[oi] = true
			if owner[oi] < 0 || try(owner[oi], seen) {
				owner[oi] = slot
				return true
			}
		}
		return false
	}
	for s := range slotRole {
		if try(s, make([]bool, len(officials))) {
			filled++
		}
	}
	return len(slotRole), filled
}

// String describes the rule in words, e.g.
// "2 of minister, cio, registrar, including at least 1 minister".
func (r Rule) String() string {
	s := fmt.Sprintf("%d of %s", r.Threshold, strings.Join(r.Of, ", "))
	roles := r.requiredRoles()
	if len(roles) == 0 {
		return s
	}
	var parts []string
	for _, role := range roles {
		parts = append(parts, fmt.Sprintf("%d %s", r.Require[role], role))
	}
	return s + ", including at least " + strings.Join(parts, " and ")
}
