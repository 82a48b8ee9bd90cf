-- flow_fingerprints: one row per flow of silver.flows with its fingerprint: what makes two flows of different captures "the same" flow for event signatures.
-- grain: dataset, site, capture, device, flow_no
-- partition: dataset
-- sources: iotlake.flows, iotlake.captures
-- The fingerprint follows the earlier signature tool (reference §2–4): the remote host by name when one is
-- known, else its address, compared through host_key() (names that differ only in their leftmost label are
-- equal); the transport and application label; the fixed port (the server side's; the ephemeral side is a
-- wildcard) and which side of it the device is on; who sent first; and the application fields that identify
-- a request (DNS query type and name, HTTP method and path without its query string, CoAP type, code and
-- URI, DHCP message type). `fingerprint` hashes exactly these; counts and timing are kept beside it to
-- describe (not to match) the flow. `offset_s` is the flow start in seconds after the capture's first frame.
WITH described AS (
  SELECT f.dataset, f.site, f.capture, f.device, f.flow_no, f.start_ts, f.end_ts,
       (unix_micros(f.start_ts) - unix_micros(c.first_ts)) / 1e6 AS offset_s,
       f.duration_s, f.scope, f.remote_ip, f.remote_name,
       coalesce(f.remote_name, f.remote_ip) AS remote,
       host_key(coalesce(f.remote_name, f.remote_ip)) AS remote_key,
       f.transport, coalesce(f.application, concat(f.transport, ':', f.server_port)) AS application,
       f.server_port AS fixed_port,
       CASE WHEN f.server_port = f.local_port AND f.server_port <> f.remote_port THEN 'server' ELSE 'client' END
         AS device_role,
       f.initiator,
       nullif(concat_ws(' ',
         'qtype=' || f.dns_qry_type,
         'qname=' || host_key(f.dns_qry_name),
         'method=' || f.http_method,
         'uri=' || regexp_replace(f.http_uri, '[?].*$', ''),
         'coap=' || nullif(concat_ws('/', f.coap_type, f.coap_code), ''),
         'coap_uri=' || f.coap_uri,
         'dhcp=' || f.dhcp_msg_type), '') AS app_fields,
       f.packets, f.bytes, f.tx_packets, f.tx_bytes, f.rx_packets, f.rx_bytes
FROM iotlake.flows f
JOIN iotlake.captures c ON c.dataset = f.dataset AND c.site = f.site AND c.capture = f.capture
WHERE f.dataset = :dataset AND c.dataset = :dataset
)
SELECT dataset, site, capture, device, flow_no,
       substr(sha2(concat_ws('|', remote_key, transport, application, coalesce(cast(fixed_port AS STRING), '*'),
                             device_role, initiator, coalesce(app_fields, '')), 256), 1, 16) AS fingerprint,
       start_ts, end_ts, offset_s, duration_s, scope, remote_ip, remote_name, remote, remote_key, transport,
       application, fixed_port, device_role, initiator, app_fields,
       packets, bytes, tx_packets, tx_bytes, rx_packets, rx_bytes
FROM described
