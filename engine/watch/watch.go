// Package watch calls a function when any of a set of files changes, once per burst of changes. It
// watches the files' directories rather than the files: editors save by writing a new file and renaming
// it over the old one, which a watch on the old file would miss.
package watch

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce is how long a burst of changes (an editor's write, rename, chmod) is gathered before one call.
const Debounce = 150 * time.Millisecond

// Watcher watches files.
type Watcher struct {
	w        *fsnotify.Watcher
	onChange func()
	log      *slog.Logger
	debounce time.Duration

	mu    sync.Mutex
	files map[string]bool // cleaned absolute paths
	dirs  map[string]bool
	ext   string
	done  chan struct{}
}

// New starts a watcher that calls onChange (from its own goroutine, never two at once) after changes to
// the files given to Set settle for debounce.
func New(onChange func(), debounce time.Duration, log *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("file watch: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{w: fw, onChange: onChange, log: log.With("module", "watch"), debounce: debounce,
		files: map[string]bool{}, dirs: map[string]bool{}, done: make(chan struct{})}
	go w.run()
	return w, nil
}

// Set replaces the watched files (after a reload the script may require other files).
func (w *Watcher) Set(files []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	want, dirs := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return fmt.Errorf("file watch %s: %w", f, err)
		}
		want[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if !w.dirs[d] {
			if err := w.w.Add(d); err != nil {
				return fmt.Errorf("file watch %s: %w", d, err)
			}
		}
	}
	for d := range w.dirs {
		if !dirs[d] {
			_ = w.w.Remove(d)
		}
	}
	w.files, w.dirs = want, dirs
	return nil
}

// Close stops watching.
func (w *Watcher) Close() error {
	err := w.w.Close()
	<-w.done
	return err
}

func (w *Watcher) run() {
	defer close(w.done)
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case ev, ok := <-w.w.Events:
			if !ok {
				if timer != nil {
					timer.Stop()
				}
				return
			}
			if ev.Op == fsnotify.Chmod || !w.watched(ev.Name) {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(w.debounce)
			} else {
				timer.Reset(w.debounce)
			}
			fire = timer.C
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			w.log.Warn("file watch", "err", err)
		case <-fire:
			fire = nil
			w.onChange()
		}
	}
}

func (w *Watcher) watched(name string) bool {
	abs, err := filepath.Abs(name)
	if err != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.files[abs] || (w.ext != "" && filepath.Ext(abs) == w.ext && w.dirs[filepath.Dir(abs)])
}

// MatchExt makes every file with this extension (".lua") in a watched directory count, so that a file a
// script starts to require is noticed even when the reload that would have listed it failed.
func (w *Watcher) MatchExt(ext string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ext = ext
}
