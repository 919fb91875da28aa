"""libuptls-common (harness/common/): the library's own tests.

Each test drives build/common/uc_selftest (harness/common/test/uc_selftest.c)
and checks the answer against an independent Python reference: Python's
strict UTF-8 codec (RFC 3629: no overlongs, no surrogates, nothing above
U+10FFFF) and json module. UPTLS_COMMON_SELFTEST names another build of the
driver (make asan uses its sanitizer build)."""
import json
import os
import random
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELFTEST = os.environ.get("UPTLS_COMMON_SELFTEST",
                          os.path.join(REPO, "build", "common", "uc_selftest"))


@pytest.fixture(scope="module", autouse=True)
def built():
    if "UPTLS_COMMON_SELFTEST" not in os.environ:
        r = subprocess.run(["make", "-s", "-C", REPO, "build/common/uc_selftest"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    assert os.access(SELFTEST, os.X_OK), SELFTEST


def run(*args, data=b""):
    r = subprocess.run([SELFTEST, *args], input=data, capture_output=True, timeout=30)
    assert r.stderr == b"", r.stderr
    return r


def reference_text(data):
    """What a JSON reader must get back: valid UTF-8 decoded, every other byte
    as the code point of the same number (its Latin-1 reading)."""
    out, i = [], 0
    while i < len(data):
        for n in (1, 2, 3, 4):
            try:
                ch = data[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                out.append(ch)
                i += n
                break
        else:
            out.append(chr(data[i]))
            i += 1
    return "".join(out)


EDGES = [b"", b"plain", b"a\"b\\c", b"\n\r\t\x00\x01\x1f\x7f", b"<script>&'x'</script>",
         "é€😀\U0010ffff".encode(), b"\xff\xfe", b"\xc3", b"\xe2\x82", b"\xe2\x82A",
         b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
         b"\x80\xbf", b"a\"b\\c\xff\xc3\xa9\x7f\t!"]


def random_inputs(n=150, seed=11):
    rnd = random.Random(seed)
    alphabet = [0x00, 0x09, 0x0a, 0x22, 0x26, 0x27, 0x3c, 0x3e, 0x41, 0x5c, 0x7f, 0x80, 0xa9,
                0xbf, 0xc0, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff]
    out = []
    for _ in range(n):
        k = rnd.randrange(0, 24)
        if rnd.random() < 0.3:
            s = "".join(chr(rnd.choice([rnd.randrange(0x20, 0x7f), rnd.randrange(0xa0, 0xd7ff),
                                        rnd.randrange(0xe000, 0xfffe),
                                        rnd.randrange(0x10000, 0x110000)])) for _ in range(k))
            out.append(s.encode())
        else:
            out.append(bytes(rnd.choice(alphabet) for _ in range(k)))
    return out


@pytest.mark.parametrize("data", EDGES + random_inputs())
def test_escape_is_ascii_html_safe_and_lossless(data):
    text = run("escape", data=data).stdout
    assert all(0x20 <= b < 0x7f for b in text), text  # ASCII, one line
    assert not set(b"<>&'") & set(text[1:-1]), text
    assert json.loads(text) == reference_text(data)
    try:
        assert json.loads(text) == data.decode("utf-8")  # valid UTF-8: exactly the text
    except UnicodeDecodeError:
        pass


@pytest.mark.parametrize("data", EDGES + random_inputs(seed=12))
def test_utf8_validation_matches_rfc3629(data):
    out = run("utf8", data=data).stdout.split()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert out == [b"0"]
        return
    assert out[0] == b"1"
    if b"\0" not in data:
        assert int(out[1]) == len(text)


def test_utf8_encode_matches_python():
    cps = [0x0, 0x41, 0x7f, 0x80, 0x7ff, 0x800, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff]
    out = run("encode", *(f"{c:x}" for c in cps)).stdout
    assert out == "".join(chr(c) for c in cps).encode("utf-8", "surrogatepass")


def test_json_writer_commas_nesting_and_reset():
    lines = run("json").stdout.decode().splitlines()
    assert json.loads(lines[0]) == {"s": "x<y>", "null": None,
                                    "list": [-3, 0.25, True, False, [], {}], "k\"ey": "a\0b"}
    assert lines[0].startswith('{"s":"x\\u003cy\\u003e","null":null,"list":[-3,0.250000,')
    assert lines[1] == "7"


def test_switch_enable_list_and_print():
    r = run("switch", " alpha,beta-two ")
    assert r.returncode == 0 and r.stdout == f"bits {1 | 1 << 40} name -\n".encode()
    r = run("switch", "beta-two")
    assert r.stdout == f"bits {1 << 40} name beta-two\n".encode()
    r = run("switch", "alpha,gamma")
    assert r.returncode == 1
    assert r.stdout == b'error unknown fault "gamma"; known: alpha, beta-two\n'
    assert run("switch-print").stdout == (b"  alpha        the first\n"
                                          b"  beta-two     a bit above 32\n")


@pytest.mark.parametrize("arg,want", [
    ("TLSv1.2", "0x0303 TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
    ("SSLv3", "0x0300 TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
    ("TLSv1.4", "0x0000 TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
    ("0x0304", "TLSv1.3"), ("0x0002", "SSLv2"), ("0x7f1c", "0x7F1C"), ("0xfafa", "0xFAFA"),
])
def test_tls_version_names(arg, want):
    assert run("tls", arg).stdout.decode().strip() == want


def test_error_collector_caps_and_prefixes():
    out = run("errs", "5").stdout.decode().split("\n")
    assert out[:6] == ["5", "f:1: problem 1", "f:1: problem 2", "f:1: too many errors",
                       "p: x", "p: y"]
    assert run("errs", "2").stdout.decode().split("\n")[:4] == \
        ["2", "f:1: problem 1", "f:1: problem 2", "p: x"]


def test_buffer_grows_and_hands_over():
    n = 5000  # well past the first allocations
    lines = run("buf", str(n)).stdout.decode().splitlines()
    assert lines[0] == f"{3 * n + 2} 0 {3 * n + 2}"
    assert lines[1] == f"{3 * n + 2} ..."
    assert run("buf", "1").stdout.decode().splitlines() == ["5 0 5", "5 abc42"]


@pytest.mark.parametrize("args,want", [
    (("42", "0", "100"), "42"), (("-5", "-10", "10"), "-5"), (("0", "0", "65535"), "0"),
    (("65536", "0", "65535"), "bad -7"), (("", "0", "1"), "bad -7"), (("12x", "0", "99"), "bad -7"),
    ((" 1", "0", "9"), "1"), (("99999999999999999999", "0", "9"), "bad -7"),
])
def test_parse_int_is_strict(args, want):
    assert run("int", *args).stdout.decode().strip() == want


def test_sockaddr_host_port():
    assert run("addr").stdout.decode().splitlines() == \
        ["0 [127.0.0.1] 8443", "0 [::1] 1", "-1 [] 0"]


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 1000])
def test_string_arrays(n):
    last = f"s{n - 1}" if n else "-"
    assert run("strv", str(n)).stdout.decode().strip() == f"{n} {last} 1"
