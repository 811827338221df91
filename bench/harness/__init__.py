"""The alert benchmark's harness: the servers and `cbrain run` it starts, the child processes that
publish and receive, the sampler of the service's metrics, the figures and the report.

    topics     the site the benchmark talks to: community, probe device, payloads, topics
    processes  child processes: webhook receiver, background load, probe, broker floor, storm
    figures    percentiles, the receiver's records, log problems
    sampler    the service's metrics every 0.5 s
    rig        influxd, Mosquitto, the receiver, each part's `cbrain run` and probe; CPU snapshots
    report     the summary table on stdout

The scenarios it runs (idle, loads, storm) and their options are bench/alert_latency.py.

The cluster benchmark (bench/cluster_throughput.py) has pieces of its own here:

    mqtt_load        a paced MQTT 3.1.1 QoS 1 load over several connections (spread over the NATS nodes)
    cluster_rig      the site, the single process on Mosquitto and the instances on a 3-node NATS
                     cluster, the CPU of every process, the paced steps and their figures
    cluster_profile  an instance in-process with timing counters and cProfile; the NATS servers' cost
                     per reading without the service
    cluster_whatif   one instance with the pulls' wait or the checkpoints' period changed
"""
