package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
)

// static holds the web page; it is served as is, with no build step.
//
//go:embed static
var static embed.FS

// contentSecurityPolicy allows only our own files: no inline script, so even
// a post that slipped into the page as HTML could not run anything.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	s.serveFile(w, r, "static/index.html")
}

func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	s.serveFile(w, r, path.Join("static", path.Clean("/"+r.URL.Path[len("/static/"):])))
}

func (s *Server) handleFavicon(w http.ResponseWriter, r *http.Request) {
	s.serveFile(w, r, "static/favicon.svg")
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	if fi, err := fs.Stat(static, name); err != nil || fi.IsDir() {
		writeError(w, r, http.StatusNotFound, "no such path: "+r.URL.Path)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	// The page is small and changes with the binary; revalidating is cheap.
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, static, name)
}
