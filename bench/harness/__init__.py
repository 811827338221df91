"""The alert benchmark's harness: the servers and `cbrain run` it starts, the child processes that
publish and receive, the sampler of the service's metrics, the figures and the report.

    topics     the site the benchmark talks to: community, probe device, payloads, topics
    processes  child processes: webhook receiver, background load, probe, broker floor, storm
    figures    percentiles, the receiver's records, log problems
    sampler    the service's metrics every 0.5 s
    rig        influxd, Mosquitto, the receiver, each part's `cbrain run` and probe; CPU snapshots
    report     the summary table on stdout

The scenarios it runs (idle, loads, storm) and their options are bench/alert_latency.py.
"""
