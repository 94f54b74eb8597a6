module github.com/libdaxkv/libdaxkv/ffi/go/daxkv

go 1.19
