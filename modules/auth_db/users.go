package authdb

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/siplua/siplua/modules/auth"
)

// users is one loaded users file: immutable once built, swapped whole on reload.
type users struct {
	file     string
	n        int
	byUser   map[string]auth.Secret // user → the first row with that user
	byDomain map[string]auth.Secret // user@domain (domain lower case) → row
	dups     []string               // users listed in more than one domain (ambiguous without use_domain)
}

func (u *users) get(user, domain string, useDomain bool) (auth.Secret, bool) {
	if u == nil {
		return auth.Secret{}, false
	}
	if useDomain {
		s, ok := u.byDomain[user+"@"+strings.ToLower(domain)]
		return s, ok
	}
	s, ok := u.byUser[user]
	return s, ok
}

// row is one user of the file.
type row struct {
	User      string `toml:"user"`
	Domain    string `toml:"domain"`
	Password  string `toml:"password"`
	HA1       string `toml:"ha1"`
	HA1SHA256 string `toml:"ha1_sha256"`
}

// loadUsers reads a users file: CSV (.csv) or TOML (.toml), by extension.
func loadUsers(path string) (*users, error) {
	var rows []row
	var where []string
	var err error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		rows, where, err = readCSV(path)
	case ".toml":
		rows, where, err = readTOML(path)
	default:
		return nil, fmt.Errorf("users_file: expected a .csv or .toml file, got %q", path)
	}
	if err != nil {
		return nil, err
	}
	u := &users{file: path, byUser: map[string]auth.Secret{}, byDomain: map[string]auth.Secret{}}
	for i, r := range rows {
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", where[i], err)
		}
		s := auth.Secret{Password: r.Password, HA1MD5: strings.ToLower(r.HA1), HA1SHA256: strings.ToLower(r.HA1SHA256)}
		key := r.User + "@" + strings.ToLower(r.Domain)
		if _, dup := u.byDomain[key]; dup {
			return nil, fmt.Errorf("%s: user %q in domain %q listed twice", where[i], r.User, r.Domain)
		}
		u.byDomain[key] = s
		if _, dup := u.byUser[r.User]; dup {
			u.dups = append(u.dups, r.User)
		} else {
			u.byUser[r.User] = s
		}
		u.n++
	}
	return u, nil
}

func (r *row) check() error {
	switch {
	case r.User == "":
		return errors.New("user: expected a name, got \"\"")
	case strings.ContainsAny(r.User, "@ \t"):
		return fmt.Errorf("user: expected a name without '@' or blanks, got %q", r.User)
	case r.Password == "" && r.HA1 == "" && r.HA1SHA256 == "":
		return fmt.Errorf("user %q: expected password, ha1 or ha1_sha256, got none", r.User)
	}
	if err := checkHex("ha1", r.HA1, 32); err != nil {
		return err
	}
	return checkHex("ha1_sha256", r.HA1SHA256, 64)
}

func checkHex(name, v string, n int) error {
	if v == "" {
		return nil
	}
	ok := len(v) == n
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
	}
	if !ok {
		return fmt.Errorf("%s: expected %d hex digits, got %d characters", name, n, len(v)) // never the value
	}
	return nil
}

// readCSV: a header line names the columns (user, domain, password, ha1, ha1_sha256, any order, user
// required); '#' starts a comment line.
func readCSV(path string) ([]row, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("users_file: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err == io.EOF {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	cols := make([]func(*row) *string, len(head))
	hasUser := false
	for i, h := range head {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "user", "username":
			cols[i] = func(r *row) *string { return &r.User }
			hasUser = true
		case "domain":
			cols[i] = func(r *row) *string { return &r.Domain }
		case "password":
			cols[i] = func(r *row) *string { return &r.Password }
		case "ha1":
			cols[i] = func(r *row) *string { return &r.HA1 }
		case "ha1_sha256":
			cols[i] = func(r *row) *string { return &r.HA1SHA256 }
		default:
			return nil, nil, fmt.Errorf("%s:1: column %q: expected user, domain, password, ha1 or ha1_sha256", path, h)
		}
	}
	if !hasUser {
		return nil, nil, fmt.Errorf("%s:1: expected a header line with a user column, got %q", path, strings.Join(head, ","))
	}
	var rows []row
	var where []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(cols) {
			return nil, nil, fmt.Errorf("%s:%d: expected %d fields, got %d", path, line, len(cols), len(rec))
		}
		var x row
		for i, v := range rec {
			*cols[i](&x) = strings.TrimSpace(v)
		}
		rows = append(rows, x)
		where = append(where, fmt.Sprintf("%s:%d", path, line))
	}
	return rows, where, nil
}

// readTOML: [[users]] tables with the keys user, domain, password, ha1, ha1_sha256; unknown keys are errors.
func readTOML(path string) ([]row, []string, error) {
	var doc struct {
		Users []row `toml:"users"`
	}
	md, err := toml.DecodeFile(path, &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// only the line: the parser's message may quote the text, and that text may be a password
			return nil, nil, fmt.Errorf("%s:%d: TOML syntax error (expected [[users]] tables of key = \"value\" lines)", path, pe.Position.Line)
		}
		return nil, nil, fmt.Errorf("%s: %w", path, err) // a file error, or a type mismatch (names the key only)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, nil, fmt.Errorf("%s: unknown key %q (expected [[users]] with user, domain, password, ha1, ha1_sha256)", path, und[0].String())
	}
	where := make([]string, len(doc.Users))
	for i := range doc.Users {
		where[i] = fmt.Sprintf("%s: users[%d]", path, i+1)
	}
	return doc.Users, where, nil
}
