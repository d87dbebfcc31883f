package permissions

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// readAddressFile reads Kamailio's address file — "grp ip [mask [port [tag]]]" separated by blanks, '#'
// starting a comment — or, for a .csv name, rows grp,ip_addr,mask,port,tag[,proto] (a first row naming
// the columns is skipped). ip may carry its prefix length ("10.0.0.0/8"); mask 0 or absent means the
// whole address, as Kamailio's address table.
func readAddressFile(path string) ([]*entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("address_file: %w", err)
	}
	defer f.Close()
	var rows [][]string
	var lines []int
	if strings.HasSuffix(strings.ToLower(path), ".csv") {
		r := csv.NewReader(f)
		r.FieldsPerRecord, r.Comment, r.TrimLeadingSpace = -1, '#', true
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("address_file %s: %w", path, err)
			}
			line, _ := r.FieldPos(0)
			if len(rows) == 0 && len(rec) > 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "grp") {
				continue
			}
			rows, lines = append(rows, rec), append(lines, line)
		}
	} else {
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			l := sc.Text()
			if i := strings.IndexByte(l, '#'); i >= 0 {
				l = l[:i]
			}
			if fs := strings.Fields(l); len(fs) > 0 {
				rows, lines = append(rows, fs), append(lines, n)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("address_file %s: %w", path, err)
		}
	}
	out := make([]*entry, 0, len(rows))
	for i, rec := range rows {
		e, err := rowEntry(rec)
		if err != nil {
			return nil, fmt.Errorf("address_file %s:%d: %w", path, lines[i], err)
		}
		out = append(out, e)
	}
	return out, nil
}

func rowEntry(rec []string) (*entry, error) {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	if len(rec) < 2 || len(rec) > 6 {
		return nil, fmt.Errorf("expected \"grp ip [mask [port [tag]]]\", got %q", strings.Join(rec, " "))
	}
	num := func(i int, what string, max int) (int, error) {
		if i >= len(rec) || rec[i] == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(rec[i])
		if err != nil || n < 0 || n > max {
			return 0, fmt.Errorf("%s: expected 0..%d, got %q", what, max, rec[i])
		}
		return n, nil
	}
	grp, err := num(0, "grp", 1<<31-1)
	if err != nil {
		return nil, err
	}
	mask, err := num(2, "mask", 128)
	if err != nil {
		return nil, err
	}
	port, err := num(3, "port", 65535)
	if err != nil {
		return nil, err
	}
	a := Address{Group: grp, CIDR: rec[1], Port: port}
	if len(rec) > 4 {
		a.Tag = rec[4]
	}
	if len(rec) > 5 {
		a.Proto = rec[5]
	}
	if mask > 0 && !strings.Contains(a.CIDR, "/") {
		a.CIDR += "/" + strconv.Itoa(mask)
	}
	if _, err := netip.ParseAddr(strings.Trim(rec[1], "[]")); err != nil && !strings.Contains(rec[1], "/") {
		// a host name: Kamailio keeps it in its domain table, matched by allow_address with that name
		pr, ok := protos[strings.ToLower(a.Proto)]
		if !ok {
			return nil, fmt.Errorf("proto: expected any, udp, tcp, tls, ws, wss or sctp, got %q", a.Proto)
		}
		return &entry{grp: grp, domain: rec[1], port: port, tag: a.Tag, proto: pr}, nil
	}
	return newEntry(a)
}
