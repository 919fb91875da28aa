"""The subset of JSON Schema (draft 2020-12) the adapter protocol's schemas use.

The driver runs on Python's standard library alone, so it cannot import a
JSON Schema package; the adapter messages are checked against the very
schema files the protocol document publishes (docs/adapter-protocol/*.json),
with this small validator. tests/test_exec_adapter.py checks that it agrees
with Debian's python3-jsonschema on every example of the document, so the
schemas mean the same to a user's validator as to the harness.

Keywords: type, enum, const, properties, required, additionalProperties,
propertyNames, items, minItems, minimum, maximum, minLength, pattern,
oneOf, $ref to "#/$defs/NAME", and the annotations ($schema, $id, title,
description, examples, default, $comment), which are not checked.
"""

import re

ANNOTATIONS = {"$schema", "$id", "title", "description", "examples", "default", "$comment",
               "$defs"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def errors(schema, value):
    """Every way value breaks schema, as 'PATH: what' strings (empty: valid)."""
    out = []
    _check(schema, schema, value, "$", out)
    return out


def _check(root, schema, value, path, out):
    if schema is True or schema == {}:
        return
    if schema is False:
        out.append(f"{path}: not allowed here")
        return
    unknown = set(schema) - ANNOTATIONS - set(_KEYWORDS) - _OBJECT_KEYWORDS
    if unknown:  # a schema using more than this subset must not pass silently
        raise ValueError(f"schema keyword(s) {sorted(unknown)} at {path} are not supported")
    for key, check in _KEYWORDS.items():
        if key in schema:
            check(root, schema, value, path, out)
    if _OBJECT_KEYWORDS & set(schema):
        _object(root, schema, value, path, out)


def _type(root, schema, value, path, out):
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_TYPES[t](value) for t in types):
        out.append(f"{path}: expected {' or '.join(types)}, got {_show(value)}")


def _enum(root, schema, value, path, out):
    if not any(_same(value, e) for e in schema["enum"]):
        allowed = ", ".join(_show(e) for e in schema["enum"][:12])
        out.append(f"{path}: {_show(value)} is not one of {allowed}"
                   + (", ..." if len(schema["enum"]) > 12 else ""))


def _const(root, schema, value, path, out):
    if not _same(value, schema["const"]):
        out.append(f"{path}: expected {_show(schema['const'])}, got {_show(value)}")


def _object(root, schema, value, path, out):
    if not isinstance(value, dict):
        return
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            out.append(f"{path}: missing required '{name}'")
    extra = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    for name, v in value.items():
        if names is not None:
            sub = []
            _check(root, names, name, f"{path} key", sub)
            if sub:
                out.append(f"{path}: unknown key '{name}'"
                           + (f" ({sub[0].split(': ', 1)[1]})" if "enum" not in names else ""))
                continue
        if name in props:
            _check(root, props[name], v, f"{path}.{name}", out)
        elif extra is False:
            out.append(f"{path}: unknown key '{name}' (known: {', '.join(sorted(props))})")
        elif isinstance(extra, dict):
            _check(root, extra, v, f"{path}.{name}", out)


def _items(root, schema, value, path, out):
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check(root, schema["items"], v, f"{path}[{i}]", out)


def _min_items(root, schema, value, path, out):
    if isinstance(value, list) and len(value) < schema["minItems"]:
        out.append(f"{path}: expected at least {schema['minItems']} item(s), got {len(value)}")


def _minimum(root, schema, value, path, out):
    if _TYPES["number"](value) and value < schema["minimum"]:
        out.append(f"{path}: {value} is below the minimum {schema['minimum']}")


def _maximum(root, schema, value, path, out):
    if _TYPES["number"](value) and value > schema["maximum"]:
        out.append(f"{path}: {value} is above the maximum {schema['maximum']}")


def _min_length(root, schema, value, path, out):
    if isinstance(value, str) and len(value) < schema["minLength"]:
        out.append(f"{path}: expected at least {schema['minLength']} character(s)")


def _pattern(root, schema, value, path, out):
    if isinstance(value, str) and not re.search(schema["pattern"], value):
        out.append(f"{path}: {_show(value)} does not match {schema['pattern']}")


def _one_of(root, schema, value, path, out):
    results = []
    for sub in schema["oneOf"]:
        e = []
        _check(root, sub, value, path, e)
        results.append(e)
    good = sum(1 for e in results if not e)
    if good == 0:
        best = min(results, key=len)
        out.extend(best if len(best) == 1 else [f"{path}: matches none of the allowed forms "
                                                 f"({'; '.join(best[:2])})"])
    elif good > 1:
        out.append(f"{path}: matches more than one of the allowed forms")


def _ref(root, schema, value, path, out):
    ref = schema["$ref"]
    if not ref.startswith("#/$defs/"):
        raise ValueError(f"only local '#/$defs/...' references are supported, not {ref}")
    _check(root, root["$defs"][ref[len("#/$defs/"):]], value, path, out)


_KEYWORDS = {
    "$ref": _ref, "type": _type, "enum": _enum, "const": _const, "items": _items, "minItems": _min_items, "minimum": _minimum,
    "maximum": _maximum, "minLength": _min_length, "pattern": _pattern, "oneOf": _one_of,
}


_OBJECT_KEYWORDS = {"properties", "required", "additionalProperties", "propertyNames"}


def _same(a, b):
    return type(a) is type(b) and a == b or (_TYPES["number"](a) and _TYPES["number"](b)
                                             and a == b and not isinstance(a, bool))


def _show(v):
    s = repr(v) if not isinstance(v, str) else f"'{v}'"
    return s if len(s) <= 60 else s[:57] + "..."
