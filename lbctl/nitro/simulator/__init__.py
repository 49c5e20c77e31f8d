"""A stateful NITRO simulator: stands in for a NetScaler ADC in tests, demos and by users.

It keeps real configuration state (lbvserver, servicegroup, server, lbmonitor and their
bindings), enforces the appliance's rules and error codes, and answers with the appliance's
wire quirks (empty 201 bodies, numbers as strings, absent keys for empty lists, 207 bulk
results), so a client that works against it works against an ADC.

    sim = Simulator(username="nsroot", password="nsroot", clock=time.monotonic)
    async with sim.serve("127.0.0.1", 0) as url:
        ...                       # NITRO under {url}/nitro/v1, control API under {url}/simulator
    sim.faults.error_rate = 0.2   # faults apply to NITRO requests only
    sim.objects("lbvserver"); sim.requests; sim.expire_sessions()

Control API: GET/PUT /simulator/faults, POST /simulator/expire-sessions,
GET /simulator/objects/<resource>, GET/DELETE /simulator/requests, POST /simulator/reset,
PUT /simulator/members (mark member/service probes UP or DOWN: ``sim.set_probe``),
PUT /simulator/features (switch nsfeature flags, e.g. ``{"lb": false}``).
Command line: ``python -m lbctl.nitro.simulator --help``.
"""

from lbctl.nitro.simulator.faults import Faults
from lbctl.nitro.simulator.server import RequestRecord, Simulator

__all__ = ["Faults", "RequestRecord", "Simulator"]
