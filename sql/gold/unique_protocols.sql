-- unique_protocols: per device, filter profile and scope, over one capture or over all the device's captures ('*'): the distinct protocol labels at each layer.
-- grain: dataset, site, capture, device, profile, scope
-- partition: dataset
-- sources: iotlake.device_packets, iotlake.packet_protocols, filter_profiles (conf/iotlake.yaml)
-- The layers of silver.packet_protocols: network (ip, ipv6), transport (tcp, udp), session (tls, dtls) and
-- application (one label per packet), each a sorted list, as the earlier `*-unique-protos-per-mac.csv`.
-- `other` lists the labels of packets without an application label (arp, icmp, igmp, …).
WITH labelled AS (
  SELECT t.dataset, t.site, t.capture, t.device, p.profile, scope_name AS scope,
         l.network, l.transport, l.session, l.application,
         CASE WHEN l.application IS NULL THEN l.protocol END AS other
  FROM iotlake.device_packets t
  JOIN iotlake.packet_protocols l
    ON l.dataset = t.dataset AND l.site = t.site AND l.capture = t.capture AND l.frame_no = t.frame_no
  JOIN filter_profiles p
    ON (t.is_ip OR NOT p.ip_only) AND NOT arrays_overlap(t.flags, p.exclude)
  LATERAL VIEW explode(array('ALL', t.scope)) AS scope_name
  WHERE t.dataset = :dataset AND l.dataset = :dataset
),
per_capture AS (
  SELECT dataset, site, capture, device, profile, scope,
         collect_set(network) AS network, collect_set(transport) AS transport, collect_set(session) AS session,
         collect_set(application) AS application, collect_set(other) AS other
  FROM labelled
  GROUP BY dataset, site, capture, device, profile, scope
)
SELECT dataset, site, capture, device, profile, scope,
       array_sort(network) AS network, array_sort(transport) AS transport, array_sort(session) AS session,
       array_sort(application) AS application, array_sort(other) AS other
FROM per_capture
UNION ALL
SELECT dataset, site, '*' AS capture, device, profile, scope,
       array_sort(array_distinct(flatten(collect_list(network)))),
       array_sort(array_distinct(flatten(collect_list(transport)))),
       array_sort(array_distinct(flatten(collect_list(session)))),
       array_sort(array_distinct(flatten(collect_list(application)))),
       array_sort(array_distinct(flatten(collect_list(other))))
FROM per_capture
GROUP BY dataset, site, device, profile, scope
