-- endpoint_usage: per device, filter profile and capture, one row per peer address it exchanged packets with: names, owner, party class and traffic from the device's side.
-- grain: dataset, site, capture, device, profile, remote_ip
-- partition: dataset
-- sources: iotlake.device_packets, iotlake.dns_names, iotlake.devices, iotlake.ip_owners, iotlake.sites, iotlake.site_rules, iotlake.endpoint_overrides, iotlake.certificates, filter_profiles and party_rules (session views from conf/)
-- The name is the nearest DNS answer that precedes the first packet and is still within its TTL, else the
-- TLS SNI, else the HTTP Host sent to the address, else a DNS answer outside its TTL (`dns_stale`);
-- `name_source` says which and `names` lists every name seen for the address in the capture.
-- Certificate facts: the address's leaf certificate in the capture (cert_visible false when TLS 1.3 or QUIC
-- hid it, NULL without a handshake).
-- The class is decided per capture: Local (<peer device>) when the peer MAC is a device of the site, Local
-- Multicast / Local Broadcast for group addresses, Local (gateway) / Local (other host) for other local
-- peers; for remote peers First when the name is under a first-party domain of the device's vendor, Support
-- under a support domain, then the same by AS/organisation, else Third. A manual override (`iotlake label`) of
-- the address or of the name (or a parent domain) wins over all of these: the most specific one (device, then
-- dataset, then address over name, then the longest name). `class_rule` names the deciding rule or override.
WITH profiled AS (
  SELECT t.*, p.profile
  FROM iotlake.device_packets t
  JOIN filter_profiles p ON (t.is_ip OR NOT p.ip_only) AND NOT arrays_overlap(t.flags, p.exclude)
  WHERE t.dataset = :dataset AND t.remote_ip IS NOT NULL
),
peers AS (
  SELECT dataset, site, capture, device, profile, remote_ip,
         min(ts) AS first_seen, max(ts) AS last_seen,
         count(*) AS packets, sum(frame_len) AS bytes,
         count_if(direction = 'tx') AS tx_packets,
         coalesce(sum(CASE WHEN direction = 'tx' THEN frame_len END), 0) AS tx_bytes,
         count_if(direction = 'rx') AS rx_packets,
         coalesce(sum(CASE WHEN direction = 'rx' THEN frame_len END), 0) AS rx_bytes,
         max_by(scope, frame_len) AS scope,
         min_by(peer_mac, ts) AS peer_mac,
         sort_array(collect_set(protocol)) AS protocols,
         sort_array(collect_set(remote_port)) AS remote_ports
  FROM profiled
  GROUP BY dataset, site, capture, device, profile, remote_ip
),
names AS (
  SELECT dataset, site, capture, ip, name, source, valid_from, valid_until
  FROM iotlake.dns_names
  WHERE dataset = :dataset AND NOT local
),
chosen AS (
  -- A DNS answer valid at the first packet (nearest preceding) beats SNI, SNI beats HTTP Host, and an answer
  -- outside its TTL (devices cache longer than they should, or the capture began after the lookup) comes last.
  SELECT p.dataset, p.site, p.capture, p.device, p.profile, p.remote_ip,
         max_by(named_struct('name', n.name, 'source', CASE WHEN n.rank = 1 THEN 'dns_stale' ELSE n.source END),
                named_struct('rank', n.rank, 'at', n.valid_from)) AS best
  FROM peers p
  JOIN (
    SELECT names.*, CASE source WHEN 'dns' THEN 4 WHEN 'sni' THEN 3 ELSE 2 END AS base_rank FROM names
  ) n0 ON n0.site = p.site AND n0.capture = p.capture AND n0.ip = p.remote_ip
  LATERAL VIEW inline(array(named_struct(
    'name', n0.name, 'source', n0.source, 'valid_from', n0.valid_from,
    'rank', CASE WHEN n0.source = 'dns' AND NOT (n0.valid_from <= p.first_seen AND p.first_seen <= n0.valid_until)
                 THEN 1 ELSE n0.base_rank END))) n
  GROUP BY p.dataset, p.site, p.capture, p.device, p.profile, p.remote_ip
),
all_names AS (
  SELECT site, capture, ip, sort_array(collect_set(name)) AS names
  FROM names GROUP BY site, capture, ip
),
devices AS (
  SELECT site, device, mac, lower(vendor) AS vendor FROM iotlake.devices WHERE dataset = :dataset
),
gateways AS (
  SELECT site, explode(gateway_ips) AS ip FROM iotlake.sites WHERE dataset = :dataset
),
certs AS (
  -- The address's leaf certificate in this capture (the most used visible one), else why it is hidden.
  SELECT site, capture, server_ip AS ip,
         max_by(named_struct('cn', subject_cn, 'o', subject_o, 'c', subject_c, 'issuer', issuer,
                             'san', san_dns, 'not_after', not_after, 'reason', reason),
                named_struct('visible', visible, 'handshakes', handshakes)) AS cert,
         bool_or(visible) AS cert_visible
  FROM iotlake.certificates WHERE dataset = :dataset
  GROUP BY site, capture, server_ip
),
owners AS (
  SELECT ip, as_name, as_country, asn, network_cidr, organisation, source AS owner_source
  FROM iotlake.ip_owners WHERE status = 'found'
),
facts AS (
  SELECT p.*, c.best.name AS name, c.best.source AS name_source, coalesce(a.names, array()) AS names,
         o.asn, o.as_name, o.as_country, o.network_cidr, o.organisation, o.owner_source,
         d.vendor, peer.device AS peer_device, g.ip IS NOT NULL AS is_gateway,
         ce.cert, ce.cert_visible
  FROM peers p
  LEFT JOIN chosen c USING (dataset, site, capture, device, profile, remote_ip)
  LEFT JOIN all_names a ON a.site = p.site AND a.capture = p.capture AND a.ip = p.remote_ip
  LEFT JOIN owners o ON o.ip = p.remote_ip
  LEFT JOIN devices d ON d.site = p.site AND d.device = p.device
  LEFT JOIN devices peer ON peer.site = p.site AND peer.mac = p.peer_mac AND peer.device <> p.device
  LEFT JOIN gateways g ON g.site = p.site AND g.ip = p.remote_ip
  LEFT JOIN certs ce ON ce.site = p.site AND ce.capture = p.capture AND ce.ip = p.remote_ip
),
matches AS (
  SELECT f.dataset, f.site, f.capture, f.device, f.profile, f.remote_ip,
         max_by(named_struct('party', r.party, 'rule', concat(lower(r.party), ' ', r.kind, ' ', r.value)),
                -- a name beats an owner; at the same level the vendor's own rule beats a support rule
                CASE WHEN r.kind = 'domain' THEN 4 ELSE 2 END + CASE r.party WHEN 'First' THEN 1 ELSE 0 END)
           AS decided
  FROM facts f
  JOIN (
    SELECT CAST(NULL AS STRING) AS site, * FROM party_rules
    UNION ALL
    SELECT site, party, vendor, kind, value FROM iotlake.site_rules WHERE dataset = :dataset
  ) r
    ON (r.site IS NULL OR r.site = f.site)
   AND (r.vendor IS NULL OR r.vendor = f.vendor)
   AND ((r.kind = 'domain' AND f.name IS NOT NULL AND in_domain(f.name, r.value))
     OR (r.kind = 'org' AND upper(f.as_name) = r.value))
  GROUP BY f.dataset, f.site, f.capture, f.device, f.profile, f.remote_ip
),
overridden AS (
  SELECT f.dataset, f.site, f.capture, f.device, f.profile, f.remote_ip,
         max_by(named_struct('class', o.class, 'rule', concat('override ', o.kind, ' ', o.value)),
                named_struct('device', o.device <> '*', 'dataset', o.dataset <> '*', 'ip', o.kind = 'ip',
                             'length', length(o.value))) AS override
  FROM facts f
  JOIN iotlake.endpoint_overrides o
    ON (o.dataset = '*' OR o.dataset = f.dataset) AND (o.device = '*' OR o.device = f.device)
   AND ((o.kind = 'ip' AND o.value = f.remote_ip)
     OR (o.kind = 'host' AND f.name IS NOT NULL AND in_domain(f.name, o.value)))
  GROUP BY f.dataset, f.site, f.capture, f.device, f.profile, f.remote_ip
),
ruled AS (
  SELECT f.*, m.decided, o.override
  FROM facts f
  LEFT JOIN matches m USING (dataset, site, capture, device, profile, remote_ip)
  LEFT JOIN overridden o USING (dataset, site, capture, device, profile, remote_ip)
)
SELECT dataset, site, capture, device, profile, remote_ip, name, name_source, names,
       asn, as_name, as_country, network_cidr, organisation, owner_source,
       cert_visible, cert.cn AS cert_cn, cert.o AS cert_org, cert.c AS cert_country, cert.issuer AS cert_issuer,
       cert.san AS cert_san, cert.not_after AS cert_not_after, cert.reason AS cert_hidden_reason,
       CASE
         WHEN override IS NOT NULL THEN override.class
         WHEN scope = 'LAN' AND (remote_ip = '255.255.255.255' OR peer_mac = 'ff:ff:ff:ff:ff:ff') THEN 'Local Broadcast'
         WHEN scope = 'LAN' AND is_group_mac(peer_mac) THEN 'Local Multicast'
         WHEN scope = 'LAN' AND peer_device IS NOT NULL THEN concat('Local (', peer_device, ')')
         WHEN scope = 'LAN' AND is_gateway THEN 'Local (gateway)'
         WHEN scope = 'LAN' THEN 'Local (other host)'
         ELSE coalesce(decided.party, 'Third')
       END AS class,
       CASE
         WHEN override IS NOT NULL THEN override.rule
         WHEN scope = 'LAN' THEN 'local address'
         ELSE coalesce(decided.rule, 'no rule matched')
       END AS class_rule,
       scope, peer_device, protocols, remote_ports, first_seen, last_seen,
       packets, bytes, tx_packets, tx_bytes, rx_packets, rx_bytes,
       'captures' AS source
FROM ruled
