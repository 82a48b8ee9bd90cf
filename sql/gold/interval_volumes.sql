-- interval_volumes: per device, scope (ALL, LAN, WAN) and interval: frames and bytes, total and by direction.
-- grain: dataset, site, capture, device, scope, interval_start
-- partition: dataset
-- sources: iotlake.device_packets
-- Intervals are :interval_s seconds long and aligned to the epoch (wall clock), so devices and captures line up.
-- Every interval from a device's first to its last in the capture has a row, with zeros when it was silent
-- (as tshark's io,stat prints them); averages over intervals depend on that.
WITH binned AS (
  SELECT dataset, site, capture, device, scope, direction, frame_len,
         (unix_micros(ts) DIV (1000000L * :interval_s)) * :interval_s AS interval_epoch
  FROM iotlake.device_packets
  WHERE dataset = :dataset
),
spans AS (
  SELECT dataset, site, capture, device, min(interval_epoch) AS first_epoch, max(interval_epoch) AS last_epoch
  FROM binned
  GROUP BY dataset, site, capture, device
),
grid AS (
  SELECT dataset, site, capture, device, scope, interval_epoch
  FROM spans
  LATERAL VIEW explode(sequence(first_epoch, last_epoch, CAST(:interval_s AS BIGINT))) AS interval_epoch
  LATERAL VIEW explode(array('ALL', 'LAN', 'WAN')) AS scope
),
counted AS (
  SELECT dataset, site, capture, device, scope_name AS scope, interval_epoch,
         count(*) AS frames,
         sum(frame_len) AS bytes,
         count_if(direction = 'tx') AS tx_frames,
         coalesce(sum(CASE WHEN direction = 'tx' THEN frame_len END), 0) AS tx_bytes,
         count_if(direction = 'rx') AS rx_frames,
         coalesce(sum(CASE WHEN direction = 'rx' THEN frame_len END), 0) AS rx_bytes
  FROM binned
  LATERAL VIEW explode(array('ALL', scope)) AS scope_name
  GROUP BY dataset, site, capture, device, scope_name, interval_epoch
)
SELECT g.dataset, g.site, g.capture, g.device, g.scope,
       timestamp_seconds(g.interval_epoch) AS interval_start,
       CAST(:interval_s AS INT) AS interval_s,
       coalesce(c.frames, 0) AS frames,
       coalesce(c.bytes, 0) AS bytes,
       coalesce(c.tx_frames, 0) AS tx_frames,
       coalesce(c.tx_bytes, 0) AS tx_bytes,
       coalesce(c.rx_frames, 0) AS rx_frames,
       coalesce(c.rx_bytes, 0) AS rx_bytes
FROM grid g
LEFT JOIN counted c USING (dataset, site, capture, device, scope, interval_epoch)
