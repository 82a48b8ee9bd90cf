-- functions: SQL helpers every model may use; registered as temporary functions before the models run.
-- Addresses are compared as 32-hex-digit strings (IPv4 mapped into ::ffff:0:0/96), so prefix tests are
-- plain range comparisons against bronze.site_prefixes and need no Python.

-- The eight groups of an IPv6 address with '::' expanded.
CREATE OR REPLACE TEMPORARY FUNCTION ip6_groups(ip STRING) RETURNS ARRAY<STRING> RETURN
  CASE
    WHEN instr(ip, '::') = 0 THEN split(ip, ':')
    ELSE concat(
      CASE WHEN substring_index(ip, '::', 1) = '' THEN array() ELSE split(substring_index(ip, '::', 1), ':') END,
      array_repeat('0', 8
        - CASE WHEN substring_index(ip, '::', 1) = '' THEN 0 ELSE size(split(substring_index(ip, '::', 1), ':')) END
        - CASE WHEN substring_index(ip, '::', -1) = '' THEN 0 ELSE size(split(substring_index(ip, '::', -1), ':')) END),
      CASE WHEN substring_index(ip, '::', -1) = '' THEN array() ELSE split(substring_index(ip, '::', -1), ':') END)
  END;

-- An IPv4 or IPv6 address as 32 lower-case hex digits.
CREATE OR REPLACE TEMPORARY FUNCTION ip_hex(ip STRING) RETURNS STRING RETURN
  CASE
    WHEN ip IS NULL THEN NULL
    WHEN ip RLIKE '^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$' THEN lower(concat(
      '00000000000000000000ffff',
      concat_ws('', transform(split(ip, '[.]'), o -> lpad(hex(cast(o AS INT)), 2, '0')))))
    ELSE lower(concat_ws('', transform(ip6_groups(ip), g -> lpad(g, 4, '0'))))
  END;

-- True for a group (multicast or broadcast) MAC: the I/G bit of the first octet.
CREATE OR REPLACE TEMPORARY FUNCTION is_group_mac(mac STRING) RETURNS BOOLEAN RETURN
  mac IS NOT NULL AND conv(substr(mac, 1, 2), 16, 10) % 2 = 1;

-- True when a host name is the domain or under it, on label boundaries: in_domain('a.example.com',
-- 'example.com') is true, in_domain('badexample.com', 'example.com') is false.
CREATE OR REPLACE TEMPORARY FUNCTION in_domain(name STRING, domain STRING) RETURNS BOOLEAN RETURN
  lower(name) = lower(domain) OR endswith(lower(name), concat('.', lower(domain)));

-- True when a host name matches a certificate name (CN or SAN dNSName): equal, or a leading '*' wildcard
-- standing for exactly one label ('*.example.com' matches 'a.example.com', not 'a.b.example.com' or
-- 'badexample.com').
CREATE OR REPLACE TEMPORARY FUNCTION cert_name_matches(name STRING, pattern STRING) RETURNS BOOLEAN RETURN
  CASE
    WHEN pattern LIKE '*.%' THEN
      endswith(lower(name), lower(substr(pattern, 2)))
      AND length(name) > length(pattern) - 1
      AND instr(substr(lower(name), 1, length(name) - length(pattern) + 1), '.') = 0
    ELSE lower(name) = lower(pattern)
  END;

-- The key two host names of flow fingerprints compare by (the earlier signature tool's host equality): an
-- address stays itself; a name loses its first label when it has three or more, so names that differ only
-- in their leftmost label match ('use1-api.tplinkra.com' ~ 'euw1-api.tplinkra.com' ~ 'tplinkra.com') and a
-- subdomain matches its parent. Lower case, trailing dot dropped.
CREATE OR REPLACE TEMPORARY FUNCTION host_key(host STRING) RETURNS STRING RETURN
  CASE
    WHEN host IS NULL THEN NULL
    WHEN host RLIKE '^[0-9.]+$' OR instr(host, ':') > 0 THEN host
    WHEN size(split(trim(TRAILING '.' FROM lower(host)), '[.]')) >= 3
      THEN substring(trim(TRAILING '.' FROM lower(host)), instr(trim(TRAILING '.' FROM lower(host)), '.') + 1)
    ELSE trim(TRAILING '.' FROM lower(host))
  END;
