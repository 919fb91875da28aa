"""Limits several proxies share, as unsupported() reasons: each adapter
passes its own words and source; the condition is written once here."""

from .haproxy import depth_can_bind, protocol_range
from .nginx import is_ip


def fixed_limit_reasons(target, scenario, depth_why, proto_knobs=None):
    """The unsupported() reasons of a target whose verify depth is fixed
    (depth_why: why, with the source) and, when proto_knobs names them, whose
    protocols are a min/max pair. A depth is expressible where it cannot
    bind (haproxy.depth_can_bind): no backend chain is longer."""
    reasons = []
    if depth_can_bind(scenario, getattr(target, "pki", None)):
        reasons.append(f"verify_depth: {depth_why}: a depth lower than the backend's chain "
                       "cannot be expressed")
    if proto_knobs:
        for loc in scenario.locations:
            p = loc.settings.get("protocols")
            if p is not None and protocol_range(p) is None:
                reasons.append(f"protocols {p}: {proto_knobs} express a contiguous range only")
    return reasons


def one_name_for_both(settings, why):
    """The proxy has one name for the check and the SNI: a location that
    asks for two different names cannot be expressed."""
    s = settings
    if "verify_name" in s and "sni_name" in s and s["verify_name"] != s["sni_name"]:
        return f"verify_name != sni_name: {why}"
    return None


def sni_always_on(location, why):
    """The proxy sends SNI whenever it has a host name: send_sni = false is
    expressible only for an IP upstream with no name configured."""
    s = location.settings
    name = s.get("verify_name", s.get("sni_name"))
    ip_upstream = location.upstream_host and is_ip(location.upstream_host)
    if s.get("send_sni") is False and not (name is None and ip_upstream):
        return f"send_sni=false: {why}"
    return None
