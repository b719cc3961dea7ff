package witness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"filippo.io/torchwood"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Files of a witness's state directory: its key (a signed-note signer key,
// secret) and what it last cosigned of each log it follows. Nothing else:
// a witness needs no access to the portal's database.
const (
	KeyFile   = "witness.key"
	StateFile = "logs.json"
)

// AddCheckpointPath is the tlog-witness endpoint.
const AddCheckpointPath = "/add-checkpoint"

// maxRequest bounds an add-checkpoint body: a checkpoint, its signatures
// and a consistency proof of at most 63 hashes fit in a few kilobytes.
const maxRequest = 64 << 10

// Witness cosigns the checkpoints of the logs it follows, each only if it
// is consistent with the last one it cosigned of that log.
type Witness struct {
	dir    string
	signer *torchwood.CosignatureSigner
	log    *slog.Logger

	mu   sync.Mutex // one add-checkpoint at a time: check, persist, sign
	logs map[string]*logState
}

// logState is what a witness keeps of one log: its key, and the size and
// root of the last checkpoint it cosigned (0: none yet).
type logState struct {
	Origin string `json:"origin"`
	Key    string `json:"key"` // the log's note verifier key, named by its origin
	Size   int64  `json:"size"`
	Root   string `json:"root,omitempty"` // base64
}

// Open opens (on first start, creates) the witness in dir, named name (its
// key's name, in every cosignature: no spaces, no "+"). The key is created
// once and never replaced; name is used only then.
func Open(dir, name string, log *slog.Logger) (*Witness, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	key, err := auditlog.LoadOrCreateKey(filepath.Join(dir, KeyFile), name)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	signer, err := torchwood.NewCosignatureSigner(key.Name(), key.PrivateKey())
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Witness{dir: dir, signer: signer, log: log, logs: map[string]*logState{}}
	buf, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	if err == nil {
		var logs []*logState
		if err := json.Unmarshal(buf, &logs); err != nil {
			return nil, fmt.Errorf("witness state %s: %w", StateFile, err)
		}
		for _, l := range logs {
			w.logs[l.Origin] = l
		}
	}
	return w, nil
}

// VerifierKey is the witness's cosignature verifier key, which the portal's
// admin and the boards enter to trust this witness.
func (w *Witness) VerifierKey() string { return w.signer.Verifier().String() }

// Follow adds the log whose checkpoints are signed by logKey (a note
// verifier key named by the log's origin, as the portal prints it). A log
// already followed keeps its state; following it under another key is an
// error (a new key is another log to a witness).
func (w *Witness) Follow(logKey string) (origin string, err error) {
	logKey = strings.TrimSpace(logKey)
	v, err := note.NewVerifier(logKey)
	if err != nil {
		return "", fmt.Errorf("log key: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.logs[v.Name()]; ok {
		if l.Key != logKey {
			return "", fmt.Errorf("log %s is followed with another key (%s)", v.Name(), l.Key)
		}
		return v.Name(), nil
	}
	w.logs[v.Name()] = &logState{Origin: v.Name(), Key: logKey}
	return v.Name(), w.saveLocked()
}

// Latest returns the size of the last checkpoint of origin it cosigned.
func (w *Witness) Latest(origin string) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.logs[origin]
	if !ok {
		return 0, false
	}
	return l.Size, true
}

func (w *Witness) saveLocked() error {
	logs := make([]*logState, 0, len(w.logs))
	for _, l := range w.logs {
		logs = append(logs, l)
	}
	buf, err := json.MarshalIndent(logs, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.Replace(filepath.Join(w.dir, StateFile), append(buf, '\n'))
}

// Refusals an add-checkpoint request can meet, with their status codes
// (c2sp.org/tlog-witness).
var (
	errBadRequest   = &refusal{http.StatusBadRequest, "malformed add-checkpoint request"}
	errUnknownLog   = &refusal{http.StatusNotFound, "unknown log: this witness does not follow it"}
	errBadSignature = &refusal{http.StatusForbidden, "the checkpoint is not signed by the log's key"}
	errBadProof     = &refusal{http.StatusUnprocessableEntity, "the consistency proof does not prove the checkpoint extends the one this witness cosigned"}
)

type refusal struct {
	status int
	reason string
}

func (r *refusal) Error() string { return r.reason }

// conflict is the 409 answer: the old size is not the size this witness
// last cosigned, which it gives.
type conflict struct{ known int64 }

func (c *conflict) Error() string { return fmt.Sprintf("this witness last cosigned size %d", c.known) }

// ServeHTTP serves POST /add-checkpoint.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != AddCheckpointPath {
		http.NotFound(rw, r)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxRequest))
	if err != nil {
		http.Error(rw, "request too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	sigs, err := w.AddCheckpoint(body)
	var c *conflict
	var ref *refusal
	switch {
	case errors.As(err, &c):
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", c.known)
	case errors.As(err, &ref):
		w.log.Warn("witness refused a checkpoint", "status", ref.status, "reason", ref.reason)
		http.Error(rw, ref.reason, ref.status)
	case err != nil:
		w.log.Error("witness failed", "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rw.Write(sigs)
	}
}

// AddCheckpoint handles an add-checkpoint request body: "old <size>", the
// consistency proof's hashes one a line, an empty line, then the signed
// checkpoint. It checks the log's signature, that old is the size it last
// cosigned (else a conflict naming that size), and the proof (tlog.CheckTree);
// records the new checkpoint durably; and only then returns its cosignature
// line.
func (w *Witness) AddCheckpoint(body []byte) ([]byte, error) {
	head, signed, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return nil, errBadRequest
	}
	lines := strings.Split(string(head), "\n")
	size, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return nil, errBadRequest
	}
	oldSize, err := strconv.ParseInt(size, 10, 64)
	if err != nil || oldSize < 0 || strconv.FormatInt(oldSize, 10) != size || len(lines) > 64 {
		return nil, errBadRequest
	}
	proof := make(tlog.TreeProof, 0, len(lines)-1)
	for _, l := range lines[1:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return nil, errBadRequest
		}
		proof = append(proof, h)
	}
	origin, _, _ := bytes.Cut(signed, []byte("\n"))

	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.logs[string(origin)]
	if !ok {
		return nil, errUnknownLog
	}
	v, err := note.NewVerifier(l.Key)
	if err != nil {
		return nil, fmt.Errorf("log key of %s: %w", l.Origin, err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return nil, errBadSignature
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil || c.Origin != l.Origin {
		return nil, errBadRequest
	}
	if oldSize > c.N {
		return nil, errBadRequest
	}
	if oldSize != l.Size {
		return nil, &conflict{known: l.Size}
	}
	if oldSize > 0 {
		var oldRoot tlog.Hash
		if _, err := base64Decode(l.Root, oldRoot[:]); err != nil {
			return nil, fmt.Errorf("witness state of %s: %w", l.Origin, err)
		}
		if err := tlog.CheckTree(proof, c.N, c.Hash, oldSize, oldRoot); err != nil {
			return nil, errBadProof
		}
	} else if len(proof) > 0 {
		return nil, errBadRequest
	}
	prev := *l
	l.Size, l.Root = c.N, c.Hash.String()
	if err := w.saveLocked(); err != nil {
		*l = prev
		return nil, fmt.Errorf("witness state: %w", err)
	}
	cosigned, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, err
	}
	_, sigs, _ := bytes.Cut(cosigned, []byte("\n\n"))
	return sigs, nil
}

func base64Decode(s string, dst []byte) (int, error) {
	h, err := tlog.ParseHash(s)
	if err != nil {
		return 0, err
	}
	return copy(dst, h[:]), nil
}
