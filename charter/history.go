package charter

import (
	"fmt"
	"path/filepath"
)

// HistoryDir is the directory, beside a charter file, that keeps its
// earlier versions as v1.yaml, v2.yaml, ...: an amended charter is valid
// only with the chain of versions that led to it, so whoever serves it
// must keep them.
const HistoryDir = "charter-history"

// HistoryPath is where version v of the charter at path is kept.
func HistoryPath(path string, v int) string {
	return filepath.Join(filepath.Dir(path), HistoryDir, fmt.Sprintf("v%d.yaml", v))
}

// ReadVerified reads the charter at path and verifies it: version 1 on its
// own, a later version through every earlier one, read from HistoryPath.
// It returns the charter in force.
func ReadVerified(path string) (*Charter, error) {
	c, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	chain := make([]*Charter, 0, c.Version)
	for v := 1; v < c.Version; v++ {
		p := HistoryPath(path, v)
		old, err := ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("charter %s is version %d: version %d is needed to verify it: %w", path, c.Version, v, err)
		}
		if old.Version != v {
			return nil, fmt.Errorf("charter history %s holds version %d, not %d", p, old.Version, v)
		}
		chain = append(chain, old)
	}
	chain = append(chain, c)
	if err := VerifyChain(chain); err != nil {
		return nil, fmt.Errorf("charter %s: %w", path, err)
	}
	return c, nil
}
