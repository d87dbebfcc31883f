// Package exportdoc reads the modules' Go source for what their KSR exports' function values do not carry
// at run time: parameter names and doc comments. luabind's generated table (exportdocs_gen.go, rewritten by
// `go test ./luabind -run TestExportDocs -update`) comes from here, and `siplua stubs` uses that table.
package exportdoc

import (
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Doc is what the source says about one export.
type Doc struct {
	Params []string // names of the parameters after the message, "" where unnamed
	Doc    string   // the doc comment of the implementing function (or of the export's line)
}

// Extract reads every module package under dir (modules/) and returns the docs of their exports by
// "module.function" (the module's registered name, also for top-level modules).
func Extract(dir string) (map[string]Doc, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("exportdoc: %w", err)
	}
	out := map[string]Doc{}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "internal" || e.Name() == "all" {
			continue
		}
		if err := extractPkg(filepath.Join(dir, e.Name()), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type pkg struct {
	funcs   map[string]*ast.FuncDecl            // package-level functions
	methods map[string]map[string]*ast.FuncDecl // receiver type -> name -> method
	modName map[string]string                   // instance type -> registered module name
	newFns  map[string]string                   // registered module name -> constructor called in New
	consts  map[string]string                   // string constants (const modName = "dispatcher")
	cmap    ast.CommentMap
}

func extractPkg(dir string, out map[string]Doc) error {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	if err != nil {
		return fmt.Errorf("exportdoc: %w", err)
	}
	for _, ap := range pkgs {
		p := &pkg{funcs: map[string]*ast.FuncDecl{}, methods: map[string]map[string]*ast.FuncDecl{}, modName: map[string]string{},
			newFns: map[string]string{}, consts: map[string]string{}}
		names := make([]string, 0, len(ap.Files))
		for n := range ap.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, d := range ap.Files[n].Decls {
				if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.CONST {
					for _, sp := range gd.Specs {
						vs := sp.(*ast.ValueSpec)
						for i, id := range vs.Names {
							if i < len(vs.Values) {
								if v := strLit(vs.Values[i]); v != "" {
									p.consts[id.Name] = v
								}
							}
						}
					}
				}
			}
		}
		var exports []*ast.FuncDecl
		for _, n := range names {
			f := ap.Files[n]
			cm := ast.NewCommentMap(fset, f, f.Comments)
			if p.cmap == nil {
				p.cmap = cm
			} else {
				for k, v := range cm {
					p.cmap[k] = v
				}
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				if fd.Recv == nil {
					p.funcs[fd.Name.Name] = fd
					continue
				}
				rt := recvType(fd)
				if p.methods[rt] == nil {
					p.methods[rt] = map[string]*ast.FuncDecl{}
				}
				p.methods[rt][fd.Name.Name] = fd
				if fd.Name.Name == "Exports" {
					exports = append(exports, fd)
				}
			}
			p.findRegister(f)
		}
		for mod, fn := range p.newFns { // New: func() engine.Instance { return New() }: the type New returns
			if fd := p.funcs[fn]; fd != nil && fd.Type.Results != nil && len(fd.Type.Results.List) == 1 {
				t := fd.Type.Results.List[0].Type
				if st, ok := t.(*ast.StarExpr); ok {
					t = st.X
				}
				if id, ok := t.(*ast.Ident); ok {
					p.modName[id.Name] = mod
				}
			}
		}
		for _, fd := range exports {
			mod, ok := p.modName[recvType(fd)]
			if !ok {
				continue
			}
			p.exports(fd, mod, out)
		}
	}
	return nil
}

func recvType(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// findRegister maps instance types to module names: engine.Register(engine.Module{Name: "x", New: func()
// engine.Instance { return &T{...} }}).
func (p *pkg) findRegister(f *ast.File) {
	ast.Inspect(f, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok || !isSel(cl.Type, "engine", "Module") {
			return true
		}
		var name, typ, call string
		for _, el := range cl.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			switch key(kv) {
			case "Name":
				name = strLit(kv.Value)
				if id, ok := kv.Value.(*ast.Ident); ok {
					name = p.consts[id.Name]
				}
			case "New":
				ast.Inspect(kv.Value, func(n ast.Node) bool {
					if c, ok := n.(*ast.CompositeLit); ok && typ == "" {
						if id, ok := c.Type.(*ast.Ident); ok {
							typ = id.Name
						}
					}
					if c, ok := n.(*ast.CallExpr); ok && call == "" {
						if id, ok := c.Fun.(*ast.Ident); ok {
							call = id.Name
						}
					}
					return true
				})
			}
		}
		if name != "" && typ != "" {
			p.modName[typ] = name
		} else if name != "" && call != "" {
			p.newFns[name] = call
		}
		return true
	})
}

func isSel(e ast.Expr, x, sel string) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := s.X.(*ast.Ident)
	return ok && id.Name == x && s.Sel.Name == sel
}

func key(kv *ast.KeyValueExpr) string {
	if id, ok := kv.Key.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func strLit(e ast.Expr) string {
	if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
		s, err := strconv.Unquote(bl.Value)
		if err == nil {
			return s
		}
	}
	return ""
}

// exports walks an Exports method: every engine.Export literal (keyed or not) with a constant name.
func (p *pkg) exports(fd *ast.FuncDecl, mod string, out map[string]Doc) {
	recv := ""
	if len(fd.Recv.List) > 0 && len(fd.Recv.List[0].Names) > 0 {
		recv = fd.Recv.List[0].Names[0].Name
	}
	locals := map[string]*ast.FuncLit{} // sel := func(op int) func(...) int { ... }
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == len(as.Rhs) {
			for i, l := range as.Lhs {
				if id, ok := l.(*ast.Ident); ok {
					if fl, ok := as.Rhs[i].(*ast.FuncLit); ok {
						locals[id.Name] = fl
					}
				}
			}
		}
		return true
	})
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		if cl.Type != nil && !isSel(cl.Type, "engine", "Export") {
			return true
		}
		var name string
		var fn ast.Expr
		for i, el := range cl.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				switch key(kv) {
				case "Name":
					name = strLit(kv.Value)
				case "Fn":
					fn = kv.Value
				}
			} else if i == 0 {
				name = strLit(el)
			} else if i == 1 {
				fn = el
			}
		}
		if name == "" || fn == nil {
			return true
		}
		d := p.resolve(fn, recv, recvType(fd), locals)
		if d.Doc == "" {
			for _, cg := range p.cmap[cl] {
				if cg.End() <= cl.Pos() {
					d.Doc = strings.TrimSpace(cg.Text())
				}
			}
		}
		out[mod+"."+name] = d
		return true
	})
}

// resolve finds the parameter names and doc of an export's function expression.
func (p *pkg) resolve(e ast.Expr, recv, typ string, locals map[string]*ast.FuncLit) Doc {
	switch e := e.(type) {
	case *ast.FuncLit:
		return Doc{Params: params(e.Type)}
	case *ast.Ident:
		if fl := locals[e.Name]; fl != nil { // www := func(m *engine.Msg, realm, table string) int {...}
			return Doc{Params: params(fl.Type)}
		}
		if fd := p.funcs[e.Name]; fd != nil {
			return Doc{Params: params(fd.Type), Doc: docText(fd)}
		}
	case *ast.SelectorExpr:
		if id, ok := e.X.(*ast.Ident); ok && id.Name == recv {
			if fd := p.methods[typ][e.Sel.Name]; fd != nil {
				return Doc{Params: params(fd.Type), Doc: docText(fd)}
			}
		}
	case *ast.CallExpr: // a function that returns the export: c.logFn(level), sel(op)
		var fnType *ast.FuncType
		var body *ast.BlockStmt
		doc := ""
		switch f := e.Fun.(type) {
		case *ast.Ident:
			if fl := locals[f.Name]; fl != nil {
				fnType, body = fl.Type, fl.Body
			} else if fd := p.funcs[f.Name]; fd != nil {
				fnType, body, doc = fd.Type, fd.Body, docText(fd)
			}
		case *ast.SelectorExpr:
			if id, ok := f.X.(*ast.Ident); ok && id.Name == recv {
				if fd := p.methods[typ][f.Sel.Name]; fd != nil {
					fnType, body, doc = fd.Type, fd.Body, docText(fd)
				}
			}
		}
		if fnType == nil {
			return Doc{}
		}
		if fnType.Results != nil && len(fnType.Results.List) == 1 {
			if ft, ok := fnType.Results.List[0].Type.(*ast.FuncType); ok {
				if ps := params(ft); hasNames(ps) {
					return Doc{Params: ps, Doc: doc}
				}
			}
		}
		var ps []string
		ast.Inspect(body, func(n ast.Node) bool {
			if r, ok := n.(*ast.ReturnStmt); ok && len(r.Results) == 1 && ps == nil {
				if fl, ok := r.Results[0].(*ast.FuncLit); ok {
					ps = params(fl.Type)
				}
			}
			return ps == nil
		})
		return Doc{Params: ps, Doc: doc}
	}
	return Doc{}
}

func hasNames(ps []string) bool {
	for _, p := range ps {
		if p != "" {
			return true
		}
	}
	return false
}

// params lists the parameter names after the first (the message).
func params(ft *ast.FuncType) []string {
	var names []string
	for _, f := range ft.Params.List {
		if len(f.Names) == 0 {
			names = append(names, "")
			continue
		}
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	out := names[1:]
	for i, n := range out {
		if n == "_" {
			out[i] = ""
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// docText is a function's doc comment without its Go name in front ("process is Kamailio's ...",
// "hasTotag: 1 when ..."): the stub names the KSR function.
func docText(fd *ast.FuncDecl) string {
	if fd.Doc == nil {
		return ""
	}
	s := strings.TrimSpace(fd.Doc.Text())
	name := fd.Name.Name
	for _, pre := range []string{name + " is ", name + ": ", name + " "} {
		if rest, ok := strings.CutPrefix(s, pre); ok && rest != "" {
			if first, _, _ := strings.Cut(rest, " "); strings.ContainsAny(first, "_(") {
				return rest // starts with Kamailio's name of the function: keep its case
			}
			return strings.ToUpper(rest[:1]) + rest[1:]
		}
	}
	return s
}

// GoSource renders docs as luabind's generated table (exportdocs_gen.go).
func GoSource(docs map[string]Doc) ([]byte, error) {
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("// Code generated by go test ./luabind -run TestExportDocs -update (luabind/exportdoc); DO NOT EDIT.\n\n")
	b.WriteString("package luabind\n\n")
	b.WriteString("// exportDocs are the parameter names and doc comments of the modules' exports, read from their source.\n")
	b.WriteString("var exportDocs = map[string]exportDoc{\n")
	for _, k := range keys {
		d := docs[k]
		fmt.Fprintf(&b, "\t%q: {", k)
		if d.Params != nil {
			b.WriteString("params: []string{")
			for i, p := range d.Params {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%q", p)
			}
			b.WriteString("}")
			if d.Doc != "" {
				b.WriteString(", ")
			}
		}
		if d.Doc != "" {
			fmt.Fprintf(&b, "doc: %q", d.Doc)
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	src, err := format.Source([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("exportdoc: format: %w", err)
	}
	return src, nil
}
