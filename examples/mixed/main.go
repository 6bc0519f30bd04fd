// mixed-go is the entrypoint of an image that also holds a C and a Rust binary.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	fmt.Printf("mixed-go: GOARCH=%s\n", runtime.GOARCH)
}
