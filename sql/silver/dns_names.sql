-- dns_names: one row per (address, name) a capture reveals: a DNS/mDNS/LLMNR answer, a TLS SNI or an HTTP Host.
-- grain: dataset, site, capture, frame_no, ip, name
-- partition: dataset, site, capture
-- sources: iotlake.packets
-- DNS: every A and AAAA record of the answer section (not authority or glue) maps its address to the name the client asked for (the question), so a CNAME
-- chain leads back to the asked name; the chain is kept in `cnames`. A DNS name is valid from the answer for
-- its TTL (`valid_until`); the endpoint models pick the nearest preceding valid answer. TLS SNI (client hello)
-- and HTTP Host (request) name the server address they were sent to, with no expiry. mDNS and LLMNR answers
-- are local names (`local` true): they name hosts of the home, never remote endpoints.
WITH responses AS (
  SELECT dataset, site, capture, frame_no, ts, dst_ip AS client_ip, dns_qry_name, dns_a, dns_aaaa, dns_cname,
         arrays_zip(dns_resp_type, dns_resp_ttl, dns_resp_name) AS records,
         -- records of the answer section; authority and additional (glue) records name other hosts
         slice(arrays_zip(dns_resp_type, dns_resp_ttl, dns_resp_name), 1, coalesce(dns_answers, 0)) AS answered,
         CASE
           WHEN protocols RLIKE '(^|:)mdns(:|$)' THEN 'mdns'
           WHEN protocols RLIKE '(^|:)llmnr(:|$)' THEN 'llmnr'
           ELSE 'dns'
         END AS source
  FROM iotlake.packets
  WHERE dataset = :dataset AND dns_response AND coalesce(dns_rcode, 0) = 0
),
answers AS (
  SELECT r.*, answer
  FROM responses r
  LATERAL VIEW explode(concat(
    transform(slice(coalesce(r.dns_a, array()), 1, size(filter(r.answered, x -> x.dns_resp_type = 1))),
      (ip, i) -> named_struct('ip', ip, 'record', element_at(filter(r.answered, x -> x.dns_resp_type = 1), i + 1))),
    transform(slice(coalesce(r.dns_aaaa, array()), 1, size(filter(r.answered, x -> x.dns_resp_type = 28))),
      (ip, i) -> named_struct('ip', ip, 'record', element_at(filter(r.answered, x -> x.dns_resp_type = 28), i + 1)))
  )) AS answer
),
dns AS (
  SELECT dataset, site, capture, frame_no, answer.ip AS ip,
         lower(CASE
           WHEN source = 'dns' THEN coalesce(dns_qry_name, answer.record.dns_resp_name)
           -- tshark lists SRV owner names under dns.srv.*, not dns.resp.name, so with an SRV record the
           -- names no longer line up with the records; then the host name is the one that is no service.
           WHEN size(records) = size(filter(records, x -> x.dns_resp_name IS NOT NULL))
             THEN answer.record.dns_resp_name
           ELSE element_at(filter(records, x -> x.dns_resp_name NOT RLIKE '(^|[.])_'), -1).dns_resp_name
         END) AS name,
         source, source <> 'dns' AS local, coalesce(dns_cname, array()) AS cnames, client_ip, ts AS valid_from,
         answer.record.dns_resp_ttl AS ttl,
         timestamp_micros(unix_micros(ts) + CAST(answer.record.dns_resp_ttl AS BIGINT) * 1000000L) AS valid_until
  FROM answers
),
sni AS (
  SELECT dataset, site, capture, frame_no, dst_ip AS ip, lower(tls_sni) AS name, 'sni' AS source,
         false AS local, array() AS cnames, src_ip AS client_ip, ts AS valid_from,
         CAST(NULL AS INT) AS ttl, CAST(NULL AS TIMESTAMP) AS valid_until
  FROM iotlake.packets
  WHERE dataset = :dataset AND tls_sni IS NOT NULL AND array_contains(tls_handshake_type, 1)
),
http AS (
  SELECT dataset, site, capture, frame_no, dst_ip AS ip,
         lower(regexp_replace(http_host, ':[0-9]+$', '')) AS name, 'http' AS source,
         false AS local, array() AS cnames, src_ip AS client_ip, ts AS valid_from,
         CAST(NULL AS INT) AS ttl, CAST(NULL AS TIMESTAMP) AS valid_until
  FROM iotlake.packets
  WHERE dataset = :dataset AND http_method IS NOT NULL AND http_host IS NOT NULL AND tcp_srcport IS NOT NULL
)
SELECT * FROM dns WHERE ip IS NOT NULL AND name IS NOT NULL
UNION ALL
SELECT * FROM sni WHERE ip IS NOT NULL
UNION ALL
SELECT * FROM http WHERE ip IS NOT NULL AND name NOT RLIKE '^[0-9.]+$' AND name NOT LIKE '%:%'
