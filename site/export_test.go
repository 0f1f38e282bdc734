package site

// RootsRebuilt is how many times this site held a guest's root key.
func (s *Site) RootsRebuilt() uint64 { return s.rootsRebuilt.Load() }
