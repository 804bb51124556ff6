#!/usr/bin/env python3
"""Prints what the Kubernetes .proto files do not say about the JSON form of their messages.

go-to-protobuf generates each `generated.proto` from the Go types beside it; the JSON form of those
types is decided by their struct tags, which the .proto file loses. Reading the Go sources of each
package given (paths of its generated.proto), this prints one record per line:

  G <proto package> <API group> <version>     the group/version the package's kinds are served as
  F <message> <proto field> <json name> <flags>  a field whose JSON differs from the plain rule
      flags: inline   an embedded Go struct without a JSON name: its fields sit in the parent
             keepzero a Go pointer or a field without omitempty: a zero value is kept in JSON
             (plain rule: JSON name = proto name, zero scalars of non-pointer fields are omitted)
  A <message>                                   a Go `[]string` type: JSON is the bare array
"""
import os
import re
import sys

STRUCT = re.compile(r'^type (\w+) struct \{')
ALIAS = re.compile(r'^type (\w+) \[\]string\b')
FIELD = re.compile(r'^\s+(\w+)\s+([^\s`]+)\s+`([^`]*)`')
EMBEDDED = re.compile(r'^\s+()([^\s`]+)\s+`([^`]*)`')
GROUP = re.compile(r'^\s*(?:const\s+)?GroupName\s*=\s*"([^"]*)"')


def tag(tags, key):
    m = re.search(key + r':"([^"]*)"', tags)
    return m.group(1) if m else None


def main(paths):
    for path in paths:
        package = None
        with open(path) as f:
            for line in f:
                m = re.match(r'^package ([\w.]+);', line)
                if m:
                    package = m.group(1)
                    break
        directory = os.path.dirname(path)
        go_files = sorted(
            n for n in os.listdir(directory)
            if n.endswith('.go') and not n.endswith('_test.go') and not n.startswith('zz_generated')
            and n != 'generated.pb.go')
        group = None
        records = []
        for name in go_files:
            struct = None
            with open(os.path.join(directory, name)) as f:
                for line in f:
                    m = GROUP.match(line)
                    if m and group is None:
                        group = m.group(1)
                    m = STRUCT.match(line)
                    if m:
                        struct = m.group(1)
                        continue
                    m = ALIAS.match(line)
                    if m:
                        records.append(f'A {package}.{m.group(1)}')
                        continue
                    if struct and line.startswith('}'):
                        struct = None
                        continue
                    if not struct:
                        continue
                    m = FIELD.match(line)
                    embedded = m is None
                    m = m or EMBEDDED.match(line)
                    if not m:
                        continue
                    go_type, tags = m.group(2), m.group(3)
                    pb, js = tag(tags, 'protobuf'), tag(tags, 'json')
                    if pb is None or js is None:
                        continue
                    pm = re.search(r'name=([\w]+)', pb)
                    if pm:
                        proto_name = pm.group(1)
                    elif embedded:
                        # go-to-protobuf names an unnamed embedded field after its type
                        base = go_type.lstrip('*').split('.')[-1]
                        proto_name = base[0].lower() + base[1:]
                    else:
                        continue
                    json_parts = js.split(',')
                    json_name, opts = json_parts[0], json_parts[1:]
                    flags = []
                    if json_name == '' and (embedded or 'inline' in opts):
                        flags.append('inline')
                        json_name = '-'
                    elif go_type.startswith('*') or 'omitempty' not in opts:
                        flags.append('keepzero')
                    if json_name == '-' and not flags:
                        continue
                    if flags or json_name != proto_name:
                        records.append(
                            f'F {package}.{struct} {proto_name} {json_name} {",".join(flags) or "-"}')
        version = os.path.basename(directory)
        if group is not None:
            print(f'G {package} {group} {version}')
        for r in records:
            print(r)


if __name__ == '__main__':
    main(sys.argv[1:])
