package charter

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func off(id string, roles ...string) Official { return Official{ID: id, Roles: roles} }

func TestRuleSatisfied(t *testing.T) {
	activate := Rule{Threshold: 2, Of: []string{"minister", "cio", "registrar"}, Require: map[string]int{"minister": 1}}
	both := Rule{Threshold: 2, Of: []string{"minister", "cio"}, Require: map[string]int{"minister": 1, "cio": 1}}
	tests := []struct {
		name    string
		rule    Rule
		signers []Official
		want    []string // substrings of the error; nil means satisfied
	}{
		{"minister and cio", activate, []Official{off("a", "minister"), off("b", "cio")}, nil},
		{"no minister", activate, []Official{off("a", "registrar"), off("b", "cio")}, []string{"need at least 1 minister, have 0"}},
		{"one signer", activate, []Official{off("a", "minister")}, []string{"need 2 of minister,cio,registrar, have 1"}},
		{"nobody", activate, nil, []string{"need 2 of minister,cio,registrar, have 0", "need at least 1 minister, have 0"}},
		{"same official twice counts once", activate, []Official{off("a", "minister"), off("a", "minister")}, []string{"have 1"}},
		{"role outside rule counts for nothing", activate, []Official{off("a", "minister"), off("n", "notary")}, []string{"have 1"}},
		{"official with two roles counts once", activate, []Official{off("d", "minister", "cio")}, []string{"need 2 of"}},
		{"dual-role official fills one slot only", both, []Official{off("d", "minister", "cio"), off("r", "registrar")},
			[]string{"need 2 of minister,cio, have 1"}},
		{"dual-role plus cio: matching assigns roles", both, []Official{off("d", "minister", "cio"), off("c", "cio")}, nil},
		{"two dual-role officials", both, []Official{off("d", "minister", "cio"), off("e", "minister", "cio")}, nil},
		{"distinctness fails though counts are met", Rule{Threshold: 1, Of: []string{"minister", "cio"}, Require: map[string]int{"minister": 1, "cio": 1}},
			[]Official{off("d", "minister", "cio")}, []string{"need 2 distinct officials for 1 cio and 1 minister, distinct signers fill only 1"}},
		{"require more than threshold", Rule{Threshold: 1, Of: []string{"minister"}, Require: map[string]int{"minister": 2}},
			[]Official{off("a", "minister")}, []string{"need at least 2 minister, have 1"}},
		{"zero threshold fails closed", Rule{Threshold: 0, Of: []string{"minister"}}, []Official{off("a", "minister")}, []string{"threshold >= 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Satisfied(tt.signers)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Satisfied = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrQuorumNotMet) {
				t.Fatalf("Satisfied = %v, want ErrQuorumNotMet", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRuleString(t *testing.T) {
	r := Rule{Threshold: 2, Of: []string{"minister", "cio", "registrar"}, Require: map[string]int{"minister": 1, "cio": 1}}
	want := "2 of minister, cio, registrar, including at least 1 cio and 1 minister"
	if got := r.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestRuleSatisfiedProperty checks Satisfied against a brute force that
// tries every injective assignment of required slots to signers.
func TestRuleSatisfiedProperty(t *testing.T) {
	universe := []string{"a", "b", "c", "d"}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 6).Draw(t, "officials")
		var officials []Official
		for i := range n {
			roles := rapid.SliceOfNDistinct(rapid.SampledFrom(universe), 0, 3, rapid.ID[string]).Draw(t, fmt.Sprintf("roles%d", i))
			officials = append(officials, off(fmt.Sprintf("o%d", i), roles...))
		}
		of := rapid.SliceOfNDistinct(rapid.SampledFrom(universe), 1, 4, rapid.ID[string]).Draw(t, "of")
		rule := Rule{Threshold: rapid.IntRange(1, 5).Draw(t, "threshold"), Of: of, Require: map[string]int{}}
		for _, role := range rapid.SliceOfNDistinct(rapid.SampledFrom(of), 0, 3, rapid.ID[string]).Draw(t, "required") {
			rule.Require[role] = rapid.IntRange(1, 2).Draw(t, "min-"+role)
		}
		// Signers may repeat an official; Satisfied must count them once.
		var signers []Official
		if n > 0 {
			idx := rapid.SliceOfN(rapid.IntRange(0, n-1), 0, 8).Draw(t, "signers")
			for _, i := range idx {
				signers = append(signers, officials[i])
			}
		}
		got := rule.Satisfied(signers) == nil
		want := bruteForce(rule, signers)
		if got != want {
			t.Fatalf("Satisfied = %v, brute force = %v (err %v)", got, want, rule.Satisfied(signers))
		}
	})
}

func bruteForce(r Rule, signers []Official) bool {
	seen := map[string]bool{}
	var distinct []Official
	for _, s := range signers {
		if !seen[s.ID] {
			seen[s.ID] = true
			distinct = append(distinct, s)
		}
	}
	eligible := 0
	for _, s := range distinct {
		for _, role := range r.Of {
			if s.HasRole(role) {
				eligible++
				break
			}
		}
	}
	if eligible < r.Threshold {
		return false
	}
	var slots []string
	for role, k := range r.Require {
		for range k {
			slots = append(slots, role)
		}
	}
	used := make([]bool, len(distinct))
	var assign func(i int) bool
	assign = func(i int) bool {
		if i == len(slots) {
			return true
		}
		for j, s := range distinct {
			if !used[j] && s.HasRole(slots[i]) {
				used[j] = true
				if assign(i + 1) {
					return true
				}
				used[j] = false
			}
		}
		return false
	}
	return assign(0)
}
