//go:build race

package testnet

// Race reports whether this binary was built with the race detector: then
// Build builds with it too, and tests that skip under -short for time may
// run anyway, since the race pass is where their concurrency is checked.
const Race = true
