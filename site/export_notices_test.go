package site

import "github.com/chancery-gov/chancery/guest"

// HomeGuest is the home's guest, for tests of what the site stored.
func (s *Site) HomeGuest() *guest.Guest { return s.home.Guest }
