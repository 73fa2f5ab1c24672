"""linkplane.sim: a local AWS for PrivateLink, served over the real AWS wire protocol.

The server's dev mode, its tests and the benchmarks start it with
``linkplane.sim.server.start()`` and point aiobotocore at ``handle.endpoint_url``. It is moto
(which already speaks EC2, ELBv2, STS and Route53 over HTTP) plus what moto lacks for
PrivateLink: endpoint acceptance and connections, delays, idempotency, cross-account service
visibility, AWS's throttling buckets, injected faults and an admin API to inspect it all.

Layout (lower modules never import higher ones):
``clocks``, ``config``, ``throttling``, ``faults`` (plain mechanisms) → ``world`` (the
cross-account registry and lock) → ``models``, ``ec2_actions``, ``elbv2_actions`` (moto seams)
→ ``gateway``, ``admin`` (WSGI) → ``server``, ``cli``.
"""
