// hello-go prints where it runs, as Go sees it: enough for a test to prove the
// right binary landed in each platform's image.
package main

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"
)

// Set at build time: -ldflags "-X main.version={{version}}".
var version = "dev"

func main() {
	x := uint16(1)
	endian := "little"
	if *(*byte)(unsafe.Pointer(&x)) == 0 {
		endian = "big"
	}
	fmt.Printf("hello-go %s: GOOS=%s GOARCH=%s endian=%s bits=%d\n",
		version, runtime.GOOS, runtime.GOARCH, endian, 8*unsafe.Sizeof(uintptr(0)))
	if len(os.Args) > 1 {
		fmt.Println("args:", os.Args[1:])
	}
}
