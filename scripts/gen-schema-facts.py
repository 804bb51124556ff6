#!/usr/bin/env python3
"""Writes apiserver/src/schema_facts/facts.json: the JSON-shape facts of every built-in API type.

Sources (git clones, not committed here; the tags are the ones apiserver/src/protobuf was built from):
  github.com/kubernetes/api                     $K8S_TAG (k8s.io/api: every built-in group)
  github.com/kubernetes/apimachinery            $K8S_TAG (meta/v1, meta/v1beta1, runtime, intstr,
                                                resource, types)
  github.com/kubernetes/apiextensions-apiserver $K8S_TAG (CustomResourceDefinition)
  github.com/kubernetes/kube-aggregator         $AGGREGATOR_TAG (APIService)
Usage: scripts/gen-schema-facts.py [--check]   (repository paths from $API_REPO etc., see below)

It reads the Go type declarations (struct fields in declaration order, their `json` tags, pointer or
not, `patchStrategy`/`patchMergeKey` tags, and the `+listType`, `+listMapKey`, `+mapType`,
`+structType` markers) and records only those facts, never upstream text. The output:

  {"source": {...repos and commits...},
   "kinds":  {"<apiVersion>/<Kind>": "<type>"},          every type with an inline TypeMeta
   "opaque": {"<type>": <JSON of its zero value>},       types with their own MarshalJSON
   "types":  {"<type>": {"fields": [<field>...], "structType": "atomic"?}}}
  <type> is "<package>.<Name>", package e.g. "core/v1", "meta/v1", "resource", "intstr";
  <field> is {"name": json name, "type": <ref>, plus only the facts that hold:
              "omitempty": 1, "omitzero": 1, "pointer": 1, "patchStrategy", "patchMergeKey",
              "listType", "listMapKeys": [...], "mapType", "structType"}
  <ref> is "string" | "integer" | "number" | "boolean" | "bytes" | "any" | a <type> |
           "[]" <ref> (slice) | "map[]" <ref> (map with string keys)
Embedded inline structs (TypeMeta, ...) are expanded in place, as encoding/json does.
"""
import json
import os
import re
import subprocess
import sys

K8S_TAG = os.environ.get('K8S_TAG', 'v0.37.0-beta.0')
AGGREGATOR_TAG = os.environ.get('AGGREGATOR_TAG', 'v0.37.0-alpha.2')
REPOS = [
    # (import path prefix, git dir, tag, package directories (regex over paths in the repo))
    ('k8s.io/api', os.environ.get('API_REPO', '/work/.mirror/kubernetes+api/repo'), K8S_TAG,
     r'^[a-z0-9]+/v[0-9a-z]+$'),
    ('k8s.io/apimachinery', os.environ.get('APIMACHINERY_REPO', '/work/.mirror/kubernetes+apimachinery/repo'),
     K8S_TAG, r'^pkg/(apis/meta/v1|apis/meta/v1beta1|runtime|util/intstr|api/resource|types)$'),
    ('k8s.io/apiextensions-apiserver',
     os.environ.get('APIEXTENSIONS_REPO', '/work/.mirror/kubernetes+apiextensions-apiserver/repo'), K8S_TAG,
     r'^pkg/apis/apiextensions/v1(beta1)?$'),
    ('k8s.io/kube-aggregator', os.environ.get('AGGREGATOR_REPO', '/work/.mirror/kubernetes+kube-aggregator/repo'),
     AGGREGATOR_TAG, r'^pkg/apis/apiregistration/v1(beta1)?$'),
]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'apiserver', 'src', 'schema_facts',
                   'facts.json')

# The JSON each custom marshaler writes for its type's zero value (read from their MarshalJSON).
OPAQUE_ZERO = {'resource.Quantity': '0', 'intstr.IntOrString': 0, 'meta/v1.Duration': '0s'}
BASIC = {'string': 'string', 'bool': 'boolean', 'float32': 'number', 'float64': 'number', 'byte': 'integer'}
for n in ('int', 'int8', 'int16', 'int32', 'int64', 'uint', 'uint8', 'uint16', 'uint32', 'uint64'):
    BASIC[n] = 'integer'

TYPE_DECL = re.compile(r'^type (\w+)\s*(=?)\s*(.*)$')
FIELD = re.compile(r'^\s+(\w+)\s+([^\s`]+)\s*(?:`([^`]*)`)?\s*(//.*)?$')
EMBEDDED = re.compile(r'^\s+(\*?[\w.]+)\s*(?:`([^`]*)`)?\s*(//.*)?$')
MARKER = re.compile(r'^\s*//\s*\+(listType|listMapKey|mapType|structType|patchStrategy|patchMergeKey)=(\S+)')
IMPORT = re.compile(r'^\s*(?:import\s+)?(\w+\s+)?"([^"]+)"')
MARSHAL = re.compile(r'^func \(\w*\s*\*?(\w+)\) MarshalJSON\(')
GROUP = re.compile(r'^\s*(?:const\s+)?GroupName\s*=\s*"([^"]*)"')


def git(gitdir, *args):
    return subprocess.run(['git', '--git-dir', gitdir, *args], check=True, capture_output=True,
                          text=True).stdout


def package_key(import_path):
    parts = import_path.split('/')
    if re.match(r'^v\d', parts[-1]):
        return '/'.join(parts[-2:])
    return parts[-1]


def tag(tags, key):
    m = re.search(key + r':"([^"]*)"', tags or '')
    return m.group(1) if m else None


class Package:
    def __init__(self, key):
        self.key = key
        self.group = None
        self.structs = {}    # name -> (markers, [raw field])
        self.named = {}      # name -> (markers, Go type expression, imports)
        self.opaque = set()


def parse_file(pkg, text):
    imports = {}
    in_imports = False
    comments = []
    struct = None
    for line in text.split('\n'):
        if GROUP.match(line) and pkg.group is None:
            pkg.group = GROUP.match(line).group(1)
        m = MARSHAL.match(line)
        if m:
            pkg.opaque.add(m.group(1))
        if line.startswith('import ('):
            in_imports = True
            continue
        if in_imports or line.startswith('import "') or line.startswith('import '):
            if line.startswith(')'):
                in_imports = False
                continue
            m = IMPORT.match(line)
            if m:
                path = m.group(2)
                alias = (m.group(1) or '').strip() or path.split('/')[-1]
                imports[alias] = package_key(path)
            continue
        stripped = line.strip()
        if stripped.startswith('//'):
            comments.append(stripped)
            continue
        markers = {}
        for c in comments:
            mm = MARKER.match(c)
            if mm:
                if mm.group(1) == 'listMapKey':
                    markers.setdefault('listMapKeys', []).append(mm.group(2))
                else:
                    markers[mm.group(1)] = mm.group(2)
        comments = [] if stripped == '' or not stripped.startswith('//') else comments
        if struct is not None:
            if line.startswith('}'):
                struct = None
                continue
            m = FIELD.match(line)
            if m and not m.group(1)[0].isupper() and m.group(2).startswith('`'):
                m = None
            if m:
                name, go_type, tags = m.group(1), m.group(2), m.group(3)
                if not name[0].isupper():
                    continue
                struct[1].append((name, go_type, tags, markers, False, imports))
                continue
            m = EMBEDDED.match(line)
            if m and stripped:
                go_type, tags = m.group(1), m.group(2)
                struct[1].append((go_type.split('.')[-1].lstrip('*'), go_type, tags, markers, True, imports))
            continue
        m = TYPE_DECL.match(line)
        if not m:
            continue
        name, rest = m.group(1), m.group(3).strip()
        if not name[0].isupper():
            continue
        if rest.startswith('struct {') or rest.startswith('struct{'):
            if rest.replace(' ', '').startswith('struct{}'):
                pkg.structs[name] = (markers, [])
            else:
                struct = (markers, [])
                pkg.structs[name] = struct
        else:
            pkg.named[name] = (markers, rest.split('//')[0].strip(), imports)


class Resolver:
    def __init__(self, packages):
        self.packages = packages

    def ref(self, pkg, expr, imports):
        """The <ref> of a Go type expression used in package `pkg`, and whether it is a pointer."""
        pointer = expr.startswith('*')
        expr = expr.lstrip('*')
        if expr.startswith('[]'):
            inner = expr[2:]
            if inner in ('byte', 'uint8'):
                return 'bytes', pointer
            return '[]' + self.ref(pkg, inner, imports)[0], pointer
        if expr.startswith('map['):
            depth, i = 0, 3
            while True:
                if expr[i] == '[':
                    depth += 1
                elif expr[i] == ']':
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            return 'map[]' + self.ref(pkg, expr[i + 1:], imports)[0], pointer
        if expr in ('interface{}', 'any'):
            return 'any', pointer
        if expr in BASIC:
            return BASIC[expr], pointer
        if '.' in expr:
            alias, name = expr.split('.', 1)
            if alias not in imports:
                return 'any', pointer
            target = imports[alias]
        else:
            target, name = pkg.key, expr
        tp = self.packages.get(target)
        if tp is None:
            # time.Time and the like: only reached inside opaque types.
            return 'any', pointer
        if target == 'runtime' and name == 'Object':
            return 'any', pointer
        full = f'{target}.{name}'
        if name in tp.opaque:
            return full, pointer
        if name in tp.structs:
            return full, pointer
        if name in tp.named:
            _, under, imps = tp.named[name]
            return self.ref(tp, under, imps)[0], pointer
        return 'any', pointer

    def fields(self, pkg, name, seen=()):
        """The JSON fields of struct `name` of `pkg`, inline embeddings expanded."""
        out = []
        for fname, go_type, tags, markers, embedded, imports in pkg.structs[name][1]:
            js = tag(tags, 'json')
            if js is None and not embedded:
                js = fname  # encoding/json: no tag means the Go name
            parts = (js if js is not None else '').split(',')
            json_name, opts = parts[0], parts[1:]
            if json_name == '-' and not opts:
                continue
            ref, pointer = self.ref(pkg, go_type, imports)
            if json_name == '' and (embedded or 'inline' in opts) and ref in self.all_structs():
                tkey, tname = ref.rsplit('.', 1)
                out.extend(self.fields(self.packages[tkey], tname))
                continue
            if json_name == '':
                json_name = fname
            f = {'name': json_name, 'type': ref}
            if 'omitempty' in opts:
                f['omitempty'] = 1
            if 'omitzero' in opts:
                f['omitzero'] = 1
            if pointer:
                f['pointer'] = 1
            for key in ('patchStrategy', 'patchMergeKey'):
                v = tag(tags, key) or markers.get(key)
                if v:
                    f[key] = v
            for key in ('listType', 'listMapKeys', 'mapType', 'structType'):
                if key in markers:
                    f[key] = markers[key]
            out.append(f)
        return out

    def all_structs(self):
        if not hasattr(self, '_all'):
            self._all = {f'{p.key}.{n}' for p in self.packages.values() for n in p.structs
                         if n not in p.opaque}
        return self._all


def main():
    check = '--check' in sys.argv[1:]
    packages = {}
    source = {}
    for prefix, gitdir, ref, dirs in REPOS:
        commit = git(gitdir, 'rev-list', '-n1', ref).strip()
        source[prefix] = {'tag': ref, 'commit': commit}
        files = git(gitdir, 'ls-tree', '-r', '--name-only', commit).split('\n')
        for path in sorted(files):
            d, base = os.path.dirname(path), os.path.basename(path)
            if not re.match(dirs, d) or not base.endswith('.go') or base.endswith('_test.go') \
                    or base.startswith('zz_generated') or base.startswith('generated'):
                continue
            key = package_key(f'{prefix}/{d}')
            pkg = packages.setdefault(key, Package(key))
            pkg.dir = d
            parse_file(pkg, git(gitdir, 'show', f'{commit}:{path}'))
    resolver = Resolver(packages)
    types, kinds, opaque = {}, {}, {}
    for key in sorted(packages):
        pkg = packages[key]
        for name in sorted(pkg.opaque):
            opaque[f'{key}.{name}'] = OPAQUE_ZERO.get(f'{key}.{name}')
        for name in sorted(pkg.structs):
            if name in pkg.opaque:
                continue
            fields = resolver.fields(pkg, name)
            entry = {'fields': fields}
            if 'structType' in pkg.structs[name][0]:
                entry['structType'] = pkg.structs[name][0]['structType']
            types[f'{key}.{name}'] = entry
            names = [f['name'] for f in fields]
            if names[:2] == ['kind', 'apiVersion'] and pkg.group is not None:
                version = key.split('/')[-1]
                api_version = f'{pkg.group}/{version}' if pkg.group else version
                kinds[f'{api_version}/{name}'] = f'{key}.{name}'
    apply_named_markers(packages, types)
    # Keep what a served object can contain: the kinds, the watch event, and the types they reach.
    keep, todo = set(), list(kinds.values()) + ['meta/v1.WatchEvent']
    while todo:
        t = todo.pop()
        if t in keep or t not in types:
            continue
        keep.add(t)
        for f in types[t]['fields']:
            todo.append(f['type'].replace('[]', '').replace('map', ''))
    types = {t: e for t, e in types.items() if t in keep}
    used = {f['type'].replace('[]', '').replace('map', '') for e in types.values() for f in e['fields']}
    opaque = {t: z for t, z in opaque.items() if t in used}
    doc = {'source': source, 'kinds': dict(sorted(kinds.items())), 'opaque': opaque,
           'types': types}
    text = json.dumps(doc, separators=(',', ':'), sort_keys=False) + '\n'
    if check:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit(f'{OUT} is out of date; run {sys.argv[0]}')
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        f.write(text)
    print(f'wrote {OUT}: {len(types)} types, {len(kinds)} kinds, {len(opaque)} opaque types')


def apply_named_markers(packages, types):
    """`+listType`/`+mapType` markers written on a named slice or map type hold for its fields."""
    named = {}
    for key, pkg in packages.items():
        for name, (markers, expr, _) in pkg.named.items():
            if markers and (expr.startswith('[]') or expr.startswith('map[')):
                named[(key, name)] = markers
    if not named:
        return
    for key, pkg in packages.items():
        for sname, (_, raw_fields) in pkg.structs.items():
            entry = types.get(f'{key}.{sname}')
            if entry is None:
                continue
            by_name = {f['name']: f for f in entry['fields']}
            for fname, go_type, tags, _, embedded, imports in raw_fields:
                expr = go_type.lstrip('*')
                if '.' in expr:
                    alias, tname = expr.split('.', 1)
                    target = imports.get(alias)
                else:
                    target, tname = key, expr
                markers = named.get((target, tname))
                js = (tag(tags, 'json') or fname).split(',')[0] or fname
                f = by_name.get(js)
                if markers is None or f is None:
                    continue
                for k in ('listType', 'mapType'):
                    if k in markers and k not in f:
                        f[k] = markers[k]
                if 'listMapKeys' in markers and 'listMapKeys' not in f:
                    f['listMapKeys'] = markers['listMapKeys']


if __name__ == '__main__':
    main()
