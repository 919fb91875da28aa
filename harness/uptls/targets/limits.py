"""What targets without a verify-depth setting, or with only a min/max
protocol pair, cannot express (shared by caddy, node-http-proxy, stunnel)."""

from .haproxy import depth_can_bind, protocol_range


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
