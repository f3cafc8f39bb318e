package proxy

// bufferPool recycles ReverseProxy's copy buffers. A channel rather than a
// sync.Pool: putting a []byte into a sync.Pool boxes the slice header, one
// allocation per response, which is what the pool is meant to avoid.
type bufferPool struct {
	free chan []byte
	size int
}

func newBufferPool(keep, size int) *bufferPool {
	return &bufferPool{free: make(chan []byte, keep), size: size}
}

// Get implements httputil.BufferPool.
func (p *bufferPool) Get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]byte, p.size)
	}
}

// Put implements httputil.BufferPool.
func (p *bufferPool) Put(b []byte) {
	if cap(b) != p.size {
		return
	}
	select {
	case p.free <- b[:p.size]:
	default: // full: let the garbage collector have it
	}
}
