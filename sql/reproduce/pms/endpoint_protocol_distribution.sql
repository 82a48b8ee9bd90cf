-- endpoint_protocol_distribution: per summary device (display name) and protocol type (Discovery, Encrypted, Management, Unencrypted): the endpoint traffic counted for the type and the share of each party class — the published endpoint_protocol_distribution.csv.
-- grain: Device, ProtocolType
-- partition:
-- sources: iotlake.endpoint_usage, iotlake.protocol_usage (source imported), pms_devices, pms_captures (session views of iotlake.imports.reproduce)
-- Reference §4.7, §7.3: for each (capture, address) the distinct application protocols of that capture's ALL
-- scope protocol files of the device (IPv4 and IPv6; `*`-flagged rows never match an address); for each
-- distinct protocol the endpoint's whole traffic is added to the protocol's type. Classes per capture as in
-- endpoint_type_distribution; every device has the four types, zero when it has none.
WITH endpoints AS (
  SELECT e.site, e.capture, e.device, d.display, e.remote_ip, e.class,
         CASE WHEN e.class LIKE '%Local%' THEN 'Local' ELSE e.class END AS party,
         e.packets, e.bytes, e.tx_packets, e.tx_bytes, e.rx_packets, e.rx_bytes
  FROM iotlake.endpoint_usage e
  JOIN pms_captures c ON c.site = e.site AND c.capture = e.capture
  JOIN pms_devices d ON d.site = e.site AND d.device = e.device
  WHERE e.dataset = :dataset AND e.source = 'imported'
    AND (e.class IN ('First', 'Support', 'Third') OR e.class LIKE '%Local%')
),
used AS (
  SELECT DISTINCT site, capture, device, remote_ip, protocol, category
  FROM iotlake.protocol_usage
  WHERE dataset = :dataset AND source = 'imported' AND scope = 'ALL' AND is_application
    AND NOT coalesce(flagged, false)
),
counted AS (
  SELECT e.display, u.category, e.party, e.packets, e.bytes, e.tx_packets, e.tx_bytes, e.rx_packets, e.rx_bytes
  FROM endpoints e
  JOIN used u ON u.site = e.site AND u.capture = e.capture AND u.device = e.device AND u.remote_ip = e.remote_ip
),
keys AS (
  SELECT DISTINCT e.display, t.category
  FROM endpoints e
  CROSS JOIN (SELECT explode(array('Discovery', 'Encrypted', 'Management', 'Unencrypted')) AS category) t
)
SELECT k.display AS Device, k.category AS ProtocolType,
       coalesce(sum(x.packets), 0) AS PacketsOverall,
       coalesce(sum(x.bytes), 0) AS BytesOverall,
       coalesce(sum(x.tx_packets), 0) AS TxPacketsOverall,
       coalesce(sum(x.tx_bytes), 0) AS TxBytesOverall,
       coalesce(sum(x.rx_packets), 0) AS RxPacketsOverall,
       coalesce(sum(x.rx_bytes), 0) AS RxBytesOverall,
       coalesce(try_divide(sum(CASE WHEN x.party = 'First' THEN x.packets END), sum(x.packets)), 0D) AS PacketsPctFirst,
       coalesce(try_divide(sum(CASE WHEN x.party = 'First' THEN x.bytes END), sum(x.bytes)), 0D) AS BytesPctFirst,
       coalesce(try_divide(sum(CASE WHEN x.party = 'First' THEN x.tx_packets END), sum(x.tx_packets)), 0D) AS TxPacketsPctFirst,
       coalesce(try_divide(sum(CASE WHEN x.party = 'First' THEN x.tx_bytes END), sum(x.tx_bytes)), 0D) AS TxBytesPctFirst,
       coalesce(try_divide(sum(CASE WHEN x.party = 'First' THEN x.rx_packets END), sum(x.rx_packets)), 0D) AS RxPacketsPctFirst,
       coalesce(try_divide(sum(CASE WHEN x.party = 'First' THEN x.rx_bytes END), sum(x.rx_bytes)), 0D) AS RxBytesPctFirst,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Support' THEN x.packets END), sum(x.packets)), 0D) AS PacketsPctSupport,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Support' THEN x.bytes END), sum(x.bytes)), 0D) AS BytesPctSupport,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Support' THEN x.tx_packets END), sum(x.tx_packets)), 0D) AS TxPacketsPctSupport,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Support' THEN x.tx_bytes END), sum(x.tx_bytes)), 0D) AS TxBytesPctSupport,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Support' THEN x.rx_packets END), sum(x.rx_packets)), 0D) AS RxPacketsPctSupport,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Support' THEN x.rx_bytes END), sum(x.rx_bytes)), 0D) AS RxBytesPctSupport,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Third' THEN x.packets END), sum(x.packets)), 0D) AS PacketsPctThird,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Third' THEN x.bytes END), sum(x.bytes)), 0D) AS BytesPctThird,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Third' THEN x.tx_packets END), sum(x.tx_packets)), 0D) AS TxPacketsPctThird,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Third' THEN x.tx_bytes END), sum(x.tx_bytes)), 0D) AS TxBytesPctThird,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Third' THEN x.rx_packets END), sum(x.rx_packets)), 0D) AS RxPacketsPctThird,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Third' THEN x.rx_bytes END), sum(x.rx_bytes)), 0D) AS RxBytesPctThird,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Local' THEN x.packets END), sum(x.packets)), 0D) AS PacketsPctLocal,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Local' THEN x.bytes END), sum(x.bytes)), 0D) AS BytesPctLocal,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Local' THEN x.tx_packets END), sum(x.tx_packets)), 0D) AS TxPacketsPctLocal,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Local' THEN x.tx_bytes END), sum(x.tx_bytes)), 0D) AS TxBytesPctLocal,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Local' THEN x.rx_packets END), sum(x.rx_packets)), 0D) AS RxPacketsPctLocal,
       coalesce(try_divide(sum(CASE WHEN x.party = 'Local' THEN x.rx_bytes END), sum(x.rx_bytes)), 0D) AS RxBytesPctLocal
FROM keys k
LEFT JOIN counted x ON x.display = k.display AND x.category = k.category
GROUP BY k.display, k.category
