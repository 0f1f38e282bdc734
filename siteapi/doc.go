// Package siteapi is the wire of a Chancery site: the request-signing
// scheme, the JSON types every endpoint takes and answers, and one Go
// client per API — the officials' API over a guest's registries
// ([Client]), continuity and drills ([ContinuityClient]), the host
// operator's API ([OperatorClient]) and the home's replication status
// ([FetchStatus]). The CLI, the demo and the tests speak to sites only
// through it; the site package serves the same types.
//
// It holds no state and starts no goroutine: every call is one request.
package siteapi
