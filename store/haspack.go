package store

// HasPack reports whether the store knows a pack, from its index or its
// header: a replica asks before it takes a pack it may already hold.
func (s *Store) HasPack(id PackID) bool { return s.knowsPack(id) }
