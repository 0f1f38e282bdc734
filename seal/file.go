package seal

// maxSmallFile bounds key files, shares and sealed shares: each is at most
// a few kilobytes, so anything larger is not one.
const maxSmallFile = 64 << 10

// maxPackageFile bounds a custody package: 255 custodians with hybrid
// post-quantum recipients (about 2 KB each) and sealed shares (about 1.7 KB
// each) come to under 1 MiB.
const maxPackageFile = 4 << 20
