"""Label selectors parse, print and match as Kubernetes' do."""
from __future__ import annotations

import pytest

from kubemu.api import codec, errors, labels
from kubemu.api.v1 import meta_pb2

REQ = "unable to parse requirement: "
LABELS = {"app": "web", "tier": "front", "env": "prod", "version": "3"}


@pytest.mark.parametrize("text,canonical,matches", [
    ("", "", True),
    ("app=web", "app=web", True),
    ("app==web", "app==web", True),
    ("app!=web", "app!=web", False),
    ("app=db", "app=db", False),
    ("missing!=x", "missing!=x", True),
    ("app", "app", True),
    ("!app", "!app", False),
    ("!missing", "!missing", True),
    ("env in (prod,dev)", "env in (dev,prod)", True),
    ("env in (dev)", "env in (dev)", False),
    ("env notin (dev)", "env notin (dev)", True),
    ("missing notin (dev)", "missing notin (dev)", True),
    ("missing in (dev)", "missing in (dev)", False),
    ("tier=front,app=web", "app=web,tier=front", True),
    ("tier=front,app=db", "app=db,tier=front", False),
    ("  app = web ,  env  in  ( prod , dev )  ", "app=web,env in (dev,prod)", True),
    ("app=", "app=", False),
    ("missing=", "missing=", False),
    ("version>2", "version>2", True),
    ("version<2", "version<2", False),
    ("example.com/role=web", "example.com/role=web", False),
    ("in=x", "in=x", False),
    ("x in (in,notin)", "x in (in,notin)", False),
], ids=lambda v: repr(v) if isinstance(v, str) else None)
def test_parse_print_and_match(text, canonical, matches):
    sel = labels.parse(text)
    assert str(sel) == canonical
    assert sel.matches(LABELS) is matches
    # The canonical string parses back to the same selector.
    assert labels.parse(str(sel)) == sel


@pytest.mark.parametrize("text,message", [
    ("app in", "unable to parse requirement: found '' expected: '('"),
    ("app in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("app in a", "unable to parse requirement: found 'a' expected: '('"),
    ("app web", REQ + "found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("app=web,", "found '', expected: identifier after ','"),
    ("app=web tier", "found 'tier', expected: ',' or 'end of string'"),
    ("!app=web", "found '=', expected: ',' or 'end of string'"),
    ("=web", "found '=', expected: !, identifier, or 'end of string'"),
    ("app=(x)", "unable to parse requirement: found '(', expected: identifier"),
    ("version>x",
     "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"),
], ids=["in-without-values", "unclosed-paren", "in-without-paren", "missing-operator",
        "trailing-comma", "missing-comma", "negated-with-value", "missing-key",
        "paren-after-equals", "gt-not-integer"])
def test_bad_syntax_is_bad_request(text, message):
    with pytest.raises(errors.BadRequest) as err:
        labels.parse(text)
    assert err.value.message == message


@pytest.mark.parametrize("text,prefix", [
    ("Bad_/x=1", REQ + 'invalid label key "Bad_/x": prefix part a lowercase RFC 1123 subdomain'),
    ("-app=1", REQ + 'invalid label key "-app": name part must consist of'),
    ("app=-web-", REQ + 'invalid label value: "-web-": at key: "app": a valid label must be'),
    ("app=" + "x" * 64, REQ + 'invalid label value: "' + "x" * 64
     + '": at key: "app": must be no more than 63 characters'),
], ids=["bad-prefix", "bad-key", "bad-value", "value-too-long"])
def test_invalid_keys_and_values(text, prefix):
    with pytest.raises(errors.BadRequest) as err:
        labels.parse(text)
    assert err.value.message.startswith(prefix)


def selector_msg(doc) -> meta_pb2.LabelSelector:
    return codec.from_dict(meta_pb2.LabelSelector, doc)


@pytest.mark.parametrize("doc,canonical,matches", [
    ({}, "", True),
    ({"matchLabels": {"app": "web"}}, "app=web", True),
    ({"matchLabels": {"app": "web", "tier": "back"}}, "app=web,tier=back", False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
     "env in (dev,prod)", True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
     "env notin (prod)", False),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, "app", True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, "!app", False),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]},
     "app=web,!canary", True),
], ids=["empty-is-everything", "match-labels", "match-labels-miss", "in", "notin", "exists",
        "does-not-exist", "labels-and-expressions"])
def test_from_label_selector(doc, canonical, matches):
    sel = labels.from_label_selector(selector_msg(doc))
    assert str(sel) == canonical
    assert sel.matches(LABELS) is matches


def test_nil_label_selector_matches_nothing():
    assert not labels.from_label_selector(None).matches(LABELS)
    assert not labels.from_label_selector(None).matches({})
    assert labels.from_label_selector(meta_pb2.LabelSelector()).matches({})


def test_bad_operator_in_label_selector_is_bad_request():
    msg = selector_msg({"matchExpressions": [{"key": "a", "operator": "Like"}]})
    with pytest.raises(errors.BadRequest, match='"Like" is not a valid label selector operator'):
        labels.from_label_selector(msg)


@pytest.mark.parametrize("data,canonical,matches", [
    ({}, "", True),
    ({"app": "web"}, "app=web", True),
    ({"app": "web", "env": "dev"}, "app=web,env=dev", False),
    ({"matchLabels": {"app": "web"}}, "app=web", True),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]},
     "env in (prod)", True),
], ids=["empty", "one-label", "two-labels", "selector-json-labels", "selector-json-exprs"])
def test_selector_from_dict(data, canonical, matches):
    sel = labels.selector_from_dict(data)
    assert str(sel) == canonical
    assert sel.matches(LABELS) is matches


@pytest.mark.parametrize("doc,expected", [
    ({"matchLabels": {"app": "web"}}, []),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     ["sel.matchExpressions[0].values: Required value: must be specified when `operator` is "
      "'In' or 'NotIn'"]),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     ["sel.matchExpressions[0].values: Forbidden: may not be specified when `operator` is "
      "'Exists' or 'DoesNotExist'"]),
    ({"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]},
     ['sel.matchExpressions[0].operator: Invalid value: "Like": not a valid selector operator']),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["-x"]}]},
     ['sel.matchExpressions[0].values[0]: Invalid value: "-x": a valid label must be an empty '
      "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
      "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
      "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ({"matchLabels": {"a b": "x"}},
     ['sel.matchLabels: Invalid value: "a b": name part must consist of alphanumeric '
      "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
      "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
      "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]),
], ids=["valid", "in-without-values", "exists-with-values", "bad-operator", "bad-value",
        "bad-match-label-key"])
def test_validate_label_selector(doc, expected):
    assert [str(e) for e in labels.validate_label_selector(selector_msg(doc), "sel")] == expected


@pytest.mark.parametrize("key,ok", [
    ("app", True), ("app.kubernetes.io/name", True), ("A_b.c-D", True), ("a/b/c", False),
    ("/a", False), ("Example.com/a", False), ("a" * 63, True), ("a" * 64, False),
    ("-a", False), ("", False),
])
def test_qualified_names(key, ok):
    assert (labels.is_qualified_name(key) == []) is ok


@pytest.mark.parametrize("value,ok", [
    ("", True), ("web", True), ("a.b_c-D", True), ("a" * 63, True), ("a" * 64, False),
    ("-a", False), ("a b", False),
])
def test_label_values(value, ok):
    assert (labels.is_valid_label_value(value) == []) is ok
