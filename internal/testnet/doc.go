// Package testnet is the multi-site harness for tests: it runs real
// chancery processes on loopback and puts a fault-injecting TCP proxy
// between them, so replication, continuity and failover are tested against
// real processes, real sockets and real kernel TCP behaviour rather than
// mocks.
//
// Two parts:
//
//   - [Proxy] forwards one TCP address to another and can add latency,
//     limit bandwidth, cut connections (with RST), blackhole them
//     (half-open) or cut them mid-stream, while traffic flows.
//   - [Process] runs a binary as a child in its own process group, waits
//     for its health URL, logs to a file, and kills the whole group when
//     the test ends so a failed test leaves no orphans. [BuildChancery]
//     builds cmd/chancery once per test binary run.
//
// It is for tests only and is unix-only (process groups, signals).
package testnet
