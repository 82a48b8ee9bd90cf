-- flow_entropy: per device and capture, for LAN, WAN and all flows: the normalised Shannon entropy of packets and of bytes over the device's flows.
-- grain: dataset, site, capture, device, scope
-- partition: dataset
-- sources: iotlake.flows
-- The earlier calculate_entropy.py (reference §4.8) with its bugs fixed: real bidirectional flows from
-- silver.flows (TCP and UDP alike, no per-remote UDP pooling, no guessing of the device's own address, exact
-- byte counts instead of tshark's rounded kB/MB text). Flows with a gateway of the site are left out, as the
-- earlier script dropped router flows. H = -Σ pᵢ·log2 pᵢ with pᵢ = flowᵢ / total, divided by log2(flows) when
-- there is more than one flow (0…1); one flow gives 0. Scope ALL is the earlier "Overall".
WITH scoped AS (
  SELECT dataset, site, capture, device, scope_name AS scope, packets, bytes
  FROM iotlake.flows
  LATERAL VIEW explode(array('ALL', scope)) AS scope_name
  WHERE dataset = :dataset AND NOT with_gateway
),
shares AS (
  SELECT *,
         packets / sum(packets) OVER (PARTITION BY dataset, site, capture, device, scope) AS p_packets,
         bytes / sum(bytes) OVER (PARTITION BY dataset, site, capture, device, scope) AS p_bytes
  FROM scoped
)
SELECT dataset, site, capture, device, scope,
       count(*) AS flows,
       sum(packets) AS packets,
       sum(bytes) AS bytes,
       CASE WHEN count(*) > 1 THEN -sum(p_packets * log2(p_packets)) / log2(count(*)) ELSE 0D END AS packet_entropy,
       CASE WHEN count(*) > 1 THEN -sum(p_bytes * log2(p_bytes)) / log2(count(*)) ELSE 0D END AS byte_entropy
FROM shares
GROUP BY dataset, site, capture, device, scope
