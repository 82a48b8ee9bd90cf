-- flows: one row per bidirectional TCP or UDP flow of a device: its ends, start and end, packets and bytes per direction, application label, server port, remote name and the application fields that flow fingerprints use.
-- grain: dataset, site, capture, device, flow_no
-- partition: dataset
-- sources: iotlake.device_packets, iotlake.packets, iotlake.packet_protocols, iotlake.dns_names
-- A flow is the device's packets with one remote address, local port, remote port and transport, split by
-- time: a UDP flow ends after :flow_udp_idle_s seconds without a packet, a TCP flow after :flow_tcp_idle_s or
-- when a new connection on the same ports starts (a SYN without ACK after other packets; FIN and RST end the
-- connection, so the next one begins with a SYN). Directions are the device's (tx: sent by the device);
-- `initiator` is whoever sent the first packet. `server_port` is the port silver.packet_protocols chose as the
-- listening side (the fixed port of a fingerprint; the other is ephemeral). The remote name is the DNS answer
-- valid at the flow's start (the nearest preceding one), else the flow's own TLS SNI, else a name learned from
-- SNI or HTTP Host in the capture, else a DNS answer outside its TTL. Application fields are each the first
-- value seen in the flow. Flows to or from a gateway of the site are kept and marked `with_gateway`.
WITH pkts AS (
  SELECT d.dataset, d.site, d.capture, d.device, d.frame_no, d.ts, unix_micros(d.ts) AS us, d.frame_len,
         d.direction, d.scope, d.ip_version, d.transport, d.remote_ip, d.local_port, d.remote_port,
         array_contains(d.flags, 'gateway') AS with_gateway,
         p.tcp_flags, p.dns_qry_name, p.dns_qry_type, p.http_method, p.http_host, p.http_uri, p.coap_type,
         p.coap_code, p.coap_uri, p.dhcp_msg_type, p.tls_sni, l.application, l.server_port
  FROM iotlake.device_packets d
  JOIN iotlake.packets p
    ON p.dataset = d.dataset AND p.site = d.site AND p.capture = d.capture AND p.frame_no = d.frame_no
  JOIN iotlake.packet_protocols l
    ON l.dataset = d.dataset AND l.site = d.site AND l.capture = d.capture AND l.frame_no = d.frame_no
  WHERE d.dataset = :dataset AND p.dataset = :dataset AND l.dataset = :dataset
    AND d.transport IN ('tcp', 'udp') AND d.remote_ip IS NOT NULL AND d.remote_port IS NOT NULL
),
marked AS (
  SELECT *,
         CASE
           WHEN lag(us) OVER w IS NULL THEN 1
           WHEN transport = 'tcp' AND us - lag(us) OVER w > 1000000L * :flow_tcp_idle_s THEN 1
           WHEN transport = 'udp' AND us - lag(us) OVER w > 1000000L * :flow_udp_idle_s THEN 1
           -- a new connection: a SYN (not SYN-ACK) that does not repeat the previous packet's SYN
           WHEN transport = 'tcp' AND coalesce(tcp_flags & 18, 0) = 2
                AND coalesce(lag(tcp_flags) OVER w & 18, 0) <> 2 THEN 1
           ELSE 0
         END AS starts
  FROM pkts
  WINDOW w AS (PARTITION BY dataset, site, capture, device, transport, remote_ip, local_port, remote_port
               ORDER BY us, frame_no)
),
sequenced AS (
  SELECT *,
         sum(starts) OVER (PARTITION BY dataset, site, capture, device, transport, remote_ip, local_port,
                                        remote_port
                           ORDER BY us, frame_no ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS seq
  FROM marked
),
grouped AS (
  SELECT dataset, site, capture, device, transport, remote_ip, local_port, remote_port, seq,
         min(ts) AS start_ts, max(ts) AS end_ts,
         (max(us) - min(us)) / 1e6 AS duration_s,
         min(ip_version) AS ip_version,
         min_by(scope, us) AS scope,
         min_by(application, us) AS application,
         min_by(server_port, us) AS server_port,
         CASE WHEN min_by(direction, us) = 'tx' THEN 'device' ELSE 'remote' END AS initiator,
         count(*) AS packets, sum(frame_len) AS bytes,
         count_if(direction = 'tx') AS tx_packets,
         coalesce(sum(CASE WHEN direction = 'tx' THEN frame_len END), 0) AS tx_bytes,
         count_if(direction = 'rx') AS rx_packets,
         coalesce(sum(CASE WHEN direction = 'rx' THEN frame_len END), 0) AS rx_bytes,
         bool_or(coalesce(tcp_flags & 5, 0) <> 0) AS closed,
         bool_or(with_gateway) AS with_gateway,
         -- min_by skips rows whose ordering is NULL: the first value present in the flow
         min_by(dns_qry_name, IF(dns_qry_name IS NULL, NULL, us)) AS dns_qry_name,
         min_by(dns_qry_type, IF(dns_qry_type IS NULL, NULL, us)) AS dns_qry_type,
         min_by(http_method, IF(http_method IS NULL, NULL, us)) AS http_method,
         min_by(http_host, IF(http_host IS NULL, NULL, us)) AS http_host,
         min_by(http_uri, IF(http_uri IS NULL, NULL, us)) AS http_uri,
         min_by(coap_type, IF(coap_type IS NULL, NULL, us)) AS coap_type,
         min_by(coap_code, IF(coap_code IS NULL, NULL, us)) AS coap_code,
         min_by(coap_uri, IF(coap_uri IS NULL, NULL, us)) AS coap_uri,
         min_by(dhcp_msg_type, IF(dhcp_msg_type IS NULL, NULL, us)) AS dhcp_msg_type,
         min_by(lower(tls_sni), IF(tls_sni IS NULL, NULL, us)) AS tls_sni
  FROM sequenced
  GROUP BY dataset, site, capture, device, transport, remote_ip, local_port, remote_port, seq
),
named AS (
  SELECT f.dataset, f.site, f.capture, f.device, f.transport, f.remote_ip, f.local_port, f.remote_port, f.seq,
         max_by(named_struct('name', n.name, 'source', n.source, 'rank', n.rank), named_struct('rank', n.rank, 'at', n.valid_from))
           AS best
  FROM grouped f
  JOIN iotlake.dns_names n0
    ON n0.dataset = f.dataset AND n0.site = f.site AND n0.capture = f.capture AND n0.ip = f.remote_ip
  LATERAL VIEW inline(array(named_struct(
    'name', n0.name, 'source', n0.source, 'valid_from', n0.valid_from,
    'rank', CASE
              WHEN n0.source = 'dns' AND n0.valid_from <= f.start_ts AND f.start_ts <= n0.valid_until THEN 4
              WHEN n0.source = 'sni' THEN 3
              WHEN n0.source = 'dns' THEN 1
              ELSE 2
            END))) n
  WHERE n0.dataset = :dataset AND NOT n0.local
  GROUP BY f.dataset, f.site, f.capture, f.device, f.transport, f.remote_ip, f.local_port, f.remote_port, f.seq
)
SELECT g.dataset, g.site, g.capture, g.device,
       row_number() OVER (PARTITION BY g.dataset, g.site, g.capture, g.device
                          ORDER BY g.start_ts, g.transport, g.remote_ip, g.local_port, g.remote_port) AS flow_no,
       g.start_ts, g.end_ts, g.duration_s, g.ip_version, g.transport, g.remote_ip, g.local_port, g.remote_port,
       g.server_port, g.initiator, g.scope, g.application,
       CASE WHEN n.best.rank = 4 OR g.tls_sni IS NULL THEN n.best.name ELSE g.tls_sni END AS remote_name,
       CASE
         WHEN n.best.rank = 4 THEN 'dns'
         WHEN g.tls_sni IS NOT NULL THEN 'sni'
         WHEN n.best.rank = 1 THEN 'dns_stale'
         ELSE n.best.source
       END AS remote_name_source,
       g.packets, g.bytes, g.tx_packets, g.tx_bytes, g.rx_packets, g.rx_bytes, g.closed, g.with_gateway,
       g.dns_qry_name, g.dns_qry_type, g.http_method, g.http_host, g.http_uri, g.coap_type, g.coap_code,
       g.coap_uri, g.dhcp_msg_type, g.tls_sni
FROM grouped g
LEFT JOIN named n USING (dataset, site, capture, device, transport, remote_ip, local_port, remote_port, seq)
