// Command hub-tlogverify reads a transparency log published in the C2SP tlog-tiles layout
// (c2sp.org/tlog-tiles) with the standard Go packages golang.org/x/mod/sumdb/note (signed
// checkpoint) and golang.org/x/mod/sumdb/tlog (tile hash reader, proofs), the way any
// tlog-tiles client would. It knows nothing of the hub but the URL, the key and the layout.
//
// It verifies the checkpoint's signature, reads hash tiles (tlog checks every tile against the
// signed root), proves inclusion of one entry read from its entry bundle and, given the
// previous (size, root) in a state file, proves the new tree consistent with it; then stores
// the new (size, root) in the state file. Exit status 0 only when all of that holds.
//
// Usage: hub-tlogverify -url http://127.0.0.1:8080/v1/ledger/tlog -key <verifier key>
//
//	[-index N] [-state FILE]; the Authorization header is read from HUB_TLOG_AUTH.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

type client struct {
	base string
	auth string
	gets int
}

func (c *client) get(path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	c.gets++
	return body, nil
}

// tiles is a tlog.TileReader over the C2SP layout: sumdb's "tile/8/L/N[.p/W]" is "tile/L/N[.p/W]".
type tiles struct{ c *client }

func (t tiles) Height() int { return height }

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, tile := range ts {
		path := "tile/" + strings.TrimPrefix(tile.Path(), fmt.Sprintf("tile/%d/", height))
		data, err := t.c.get(path)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func parseCheckpoint(text string) (origin string, tree tlog.Tree, err error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 {
		return "", tree, errors.New("checkpoint has fewer than three lines")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 {
		return "", tree, fmt.Errorf("checkpoint size %q is not a number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return "", tree, fmt.Errorf("checkpoint root %q is not a base64 SHA-256", lines[2])
	}
	tree.N = n
	copy(tree.Hash[:], root)
	return lines[0], tree, nil
}

func bundleEntries(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("entry bundle ends inside a length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, errors.New("entry bundle ends inside an entry")
		}
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	return out, nil
}

func encodeIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

func run() error {
	base := flag.String("url", "", "base URL of the tlog-tiles layout (serves checkpoint, tile/...)")
	key := flag.String("key", "", "the log's verifier key (note format: name+hex+base64)")
	index := flag.Int64("index", -1, "entry to prove (default: the last one)")
	state := flag.String("state", "", "file keeping the last verified size and root")
	flag.Parse()
	if *base == "" || *key == "" {
		return errors.New("-url and -key are required")
	}
	c := &client{base: strings.TrimRight(*base, "/"), auth: os.Getenv("HUB_TLOG_AUTH")}
	verifier, err := note.NewVerifier(*key)
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}
	msg, err := c.get("checkpoint")
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("checkpoint signature: %w", err)
	}
	origin, tree, err := parseCheckpoint(n.Text)
	if err != nil {
		return err
	}
	if origin != verifier.Name() {
		return fmt.Errorf("checkpoint origin %q is not the key's name %q", origin, verifier.Name())
	}
	if tree.N == 0 {
		return errors.New("the log is empty")
	}
	hr := tlog.TileHashReader(tree, tiles{c})
	i := *index
	if i < 0 {
		i = tree.N - 1
	}
	if i >= tree.N {
		return fmt.Errorf("entry %d is beyond the signed tree of %d", i, tree.N)
	}
	// The entry from its bundle; every entry of the bundle must hash to its level-0 tile hash.
	bundle, width := i/256, int64(256)
	if (bundle+1)*256 > tree.N {
		width = tree.N - bundle*256
	}
	path := "tile/entries/" + encodeIndex(bundle)
	if width < 256 {
		path += ".p/" + strconv.FormatInt(width, 10)
	}
	data, err := c.get(path)
	if err != nil {
		return err
	}
	entries, err := bundleEntries(data)
	if err != nil {
		return err
	}
	if int64(len(entries)) != width {
		return fmt.Errorf("entry bundle %d holds %d entries, want %d", bundle, len(entries), width)
	}
	idx := make([]int64, width)
	for k := range idx {
		idx[k] = tlog.StoredHashIndex(0, bundle*256+int64(k))
	}
	leaves, err := hr.ReadHashes(idx)
	if err != nil {
		return fmt.Errorf("reading leaf hashes: %w", err)
	}
	for k, e := range entries {
		if tlog.RecordHash(e) != leaves[k] {
			return fmt.Errorf("entry %d does not hash to its leaf", bundle*256+int64(k))
		}
	}
	proof, err := tlog.ProveRecord(tree.N, i, hr)
	if err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, i, tlog.RecordHash(entries[i-bundle*256])); err != nil {
		return fmt.Errorf("inclusion of entry %d: %w", i, err)
	}
	consistent := "no previous state"
	if *state != "" {
		if old, err := os.ReadFile(*state); err == nil {
			_, prev, err := parseCheckpoint(string(old) + "\n")
			if err != nil {
				return fmt.Errorf("state file: %w", err)
			}
			if prev.N > tree.N {
				return fmt.Errorf("the log shrank from %d to %d", prev.N, tree.N)
			}
			tp, err := tlog.ProveTree(tree.N, prev.N, hr)
			if err != nil {
				return fmt.Errorf("consistency proof: %w", err)
			}
			if err := tlog.CheckTree(tp, tree.N, tree.Hash, prev.N, prev.Hash); err != nil {
				return fmt.Errorf("consistency with %d: %w", prev.N, err)
			}
			consistent = fmt.Sprintf("consistent with %d", prev.N)
		}
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "%s\n%d\n%s\n", origin, tree.N, base64.StdEncoding.EncodeToString(tree.Hash[:]))
		if err := os.WriteFile(*state, buf.Bytes(), 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("ok origin=%s size=%d root=%s entry=%d %s requests=%d\n", origin, tree.N,
		base64.StdEncoding.EncodeToString(tree.Hash[:]), i, consistent, c.gets)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hub-tlogverify:", err)
		os.Exit(1)
	}
}
