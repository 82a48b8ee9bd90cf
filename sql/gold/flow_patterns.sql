-- flow_patterns: per device, capture, remote (name, else address), transport, application label and server port: how often flows recur and whether they are periodic (the device's background behaviour).
-- grain: dataset, site, capture, device, remote, transport, application, server_port
-- partition: dataset
-- sources: iotlake.flows
-- Inter-arrival times are the gaps between consecutive flow starts of the pattern, in seconds. The dominant
-- period is their median (robust to a missed or an extra flow); `regularity` is their coefficient of variation
-- (sample std / mean; NULL with fewer than two gaps) and `period_share` the fraction of gaps within 10 % of the
-- period. A pattern is `periodic` when it has at least :periodic_min_flows flows and a CoV of at most
-- :periodic_max_cov (conf/iotlake.yaml `flows`).
WITH keyed AS (
  SELECT dataset, site, capture, device, coalesce(remote_name, remote_ip) AS remote, transport,
         coalesce(application, concat(transport, ':', server_port)) AS application, server_port,
         remote_ip, start_ts, unix_micros(start_ts) / 1e6 AS start_s, packets, bytes
  FROM iotlake.flows
  WHERE dataset = :dataset
),
gaps AS (
  SELECT *,
         start_s - lag(start_s) OVER (PARTITION BY dataset, site, capture, device, remote, transport, application,
                                                   server_port ORDER BY start_s) AS gap_s
  FROM keyed
),
stats AS (
  SELECT dataset, site, capture, device, remote, transport, application, server_port,
         count(*) AS flows,
         count(DISTINCT remote_ip) AS remote_ips,
         min(start_ts) AS first_start, max(start_ts) AS last_start,
         sum(packets) AS packets, sum(bytes) AS bytes,
         avg(gap_s) AS mean_interarrival_s,
         percentile(gap_s, 0.5) AS median_interarrival_s,
         stddev_samp(gap_s) AS std_interarrival_s,
         collect_list(gap_s) AS gap_list
  FROM gaps
  GROUP BY dataset, site, capture, device, remote, transport, application, server_port
)
SELECT dataset, site, capture, device, remote, transport, application, server_port, flows, remote_ips,
       first_start, last_start, packets, bytes, mean_interarrival_s, median_interarrival_s,
       median_interarrival_s AS period_s,
       CASE WHEN size(gap_list) >= 2 AND mean_interarrival_s > 0 THEN std_interarrival_s / mean_interarrival_s END
         AS regularity,
       CASE WHEN size(gap_list) > 0
            THEN size(filter(gap_list, g -> abs(g - median_interarrival_s) <= 0.1 * median_interarrival_s))
                 / size(gap_list)
       END AS period_share,
       coalesce(flows >= :periodic_min_flows AND size(gap_list) >= 2 AND mean_interarrival_s > 0
                AND std_interarrival_s / mean_interarrival_s <= :periodic_max_cov, false) AS periodic
FROM stats
