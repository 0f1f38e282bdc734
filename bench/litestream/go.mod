module github.com/chancery-gov/chancery/bench/litestream

go 1.26.0

require (
	github.com/mattn/go-sqlite3 v1.14.17
	github.com/pierrec/lz4/v4 v4.1.18
)
