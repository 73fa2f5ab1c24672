"""linkplane.sim: a local AWS for PrivateLink, served over the real AWS wire protocol.

The server's dev mode, its tests and the benchmarks start it with
``linkplane.sim.server.start()`` and point aiobotocore at ``handle.endpoint_url``. It is moto
(which already speaks EC2, ELBv2, STS and Route53 over HTTP) plus what moto lacks for
PrivateLink: endpoint acceptance and connections, delays, idempotency, cross-account service
visibility, IPv6, cross-Region services, private DNS, gateway endpoints, AZ id mappings, Service
Quotas, AWS's throttling buckets, injected faults and an admin API to inspect it all. Every field
it serves is modelled or refused, never silently echoed (docs/sim.md, "Conformance").

Layout (lower modules never import higher ones):
``clocks``, ``config``, ``throttling``, ``faults``, ``zones``, ``params`` (plain mechanisms) →
``models`` → ``world`` (the cross-account registry and lock) → ``catalog``, ``addressing``,
``quotas`` → ``ec2_common`` → ``ec2_endpoints`` → ``ec2_actions``, ``elbv2_actions`` (moto
seams) → ``networks``, ``gateway``, ``admin`` (WSGI) → ``server``, ``cli``.
"""
