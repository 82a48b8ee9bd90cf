-- interval_volumes: per device, filter profile, scope (ALL, LAN, WAN) and interval: frames and bytes, total and by direction.
-- grain: dataset, site, capture, device, profile, scope, interval_start
-- partition: dataset
-- sources: iotlake.device_packets, iotlake.captures, filter_profiles (conf/iotlake.yaml, a session view)
-- Intervals are :interval_s seconds long and start at an origin chosen by :alignment: wall_clock (the epoch, so
-- devices and captures line up), capture_start (the capture's first frame, like tshark's io,stat) or
-- device_first (the device's first frame kept by the profile, like the earlier per-device pcaps).
-- Every interval from a device's first to its last (per profile) has a row, with zeros when it was silent, as
-- io,stat prints them; averages over intervals depend on that. `partial` marks intervals the capture does not
-- cover whole (its first and last); they are kept, as the earlier tool kept them, and flagged so they can be
-- left out.
WITH profiled AS (
  SELECT t.dataset, t.site, t.capture, t.device, p.profile, t.scope, t.direction, t.frame_len,
         unix_micros(t.ts) AS us
  FROM iotlake.device_packets t
  JOIN filter_profiles p
    ON (t.is_ip OR NOT p.ip_only) AND NOT arrays_overlap(t.flags, p.exclude)
  WHERE t.dataset = :dataset
),
spans AS (
  SELECT s.*,
         (s.first_us - s.origin) DIV s.len_us AS first_k,
         (s.last_us - s.origin) DIV s.len_us AS last_k
  FROM (
    SELECT f.dataset, f.site, f.capture, f.device, f.profile,
           min(f.us) AS first_us, max(f.us) AS last_us,
           CAST(:interval_s AS BIGINT) * 1000000L AS len_us,
           CASE :alignment
             WHEN 'wall_clock' THEN 0L
             WHEN 'capture_start' THEN unix_micros(min(c.first_ts))
             WHEN 'device_first' THEN min(f.us)
             ELSE raise_error(concat('unknown interval alignment ', :alignment))
           END AS origin,
           unix_micros(min(c.first_ts)) AS capture_first_us,
           unix_micros(min(c.last_ts)) AS capture_last_us
    FROM profiled f
    JOIN iotlake.captures c USING (dataset, site, capture)
    GROUP BY f.dataset, f.site, f.capture, f.device, f.profile
  ) s
),
grid AS (
  SELECT s.dataset, s.site, s.capture, s.device, s.profile, scope, k, s.origin, s.len_us,
         s.capture_first_us, s.capture_last_us, s.first_k
  FROM spans s
  LATERAL VIEW explode(sequence(s.first_k, s.last_k)) AS k
  LATERAL VIEW explode(array('ALL', 'LAN', 'WAN')) AS scope
),
counted AS (
  SELECT f.dataset, f.site, f.capture, f.device, f.profile, scope_name AS scope,
         (f.us - s.origin) DIV s.len_us AS k,
         count(*) AS frames,
         sum(f.frame_len) AS bytes,
         count_if(f.direction = 'tx') AS tx_frames,
         coalesce(sum(CASE WHEN f.direction = 'tx' THEN f.frame_len END), 0) AS tx_bytes,
         count_if(f.direction = 'rx') AS rx_frames,
         coalesce(sum(CASE WHEN f.direction = 'rx' THEN f.frame_len END), 0) AS rx_bytes
  FROM profiled f
  JOIN spans s USING (dataset, site, capture, device, profile)
  LATERAL VIEW explode(array('ALL', f.scope)) AS scope_name
  GROUP BY f.dataset, f.site, f.capture, f.device, f.profile, scope_name, (f.us - s.origin) DIV s.len_us
)
SELECT g.dataset, g.site, g.capture, g.device, g.profile, g.scope,
       timestamp_micros(g.origin + g.k * g.len_us) AS interval_start,
       g.k - g.first_k AS interval_index,
       CAST(:interval_s AS INT) AS interval_s,
       CAST(:alignment AS STRING) AS alignment,
       g.origin + g.k * g.len_us < g.capture_first_us
         OR g.origin + (g.k + 1) * g.len_us > g.capture_last_us AS partial,
       coalesce(c.frames, 0) AS frames,
       coalesce(c.bytes, 0) AS bytes,
       coalesce(c.tx_frames, 0) AS tx_frames,
       coalesce(c.tx_bytes, 0) AS tx_bytes,
       coalesce(c.rx_frames, 0) AS rx_frames,
       coalesce(c.rx_bytes, 0) AS rx_bytes,
       'captures' AS source
FROM grid g
LEFT JOIN counted c USING (dataset, site, capture, device, profile, scope, k)
