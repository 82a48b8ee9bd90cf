-- overall_combined_stats: per summary device (display name): mean and CoV per hourly interval of each volume metric, overall, LAN and WAN — the published overall-combined-stats.csv.
-- grain: Device
-- partition:
-- sources: iotlake.interval_volumes (source imported), pms_devices, pms_captures (session views of iotlake.imports.reproduce)
-- Reference passive-mode-study §4.1, §7.1: over all interval rows of the device's summary captures (the
-- Combined files are Capture1's rows followed by Capture2's; a second unit such as TP2ndLink joins its
-- display name); Avg = mean, CoV = sample standard deviation (ddof 1) / mean, 0 when the mean is 0.
WITH volumes AS (
  SELECT d.display, v.scope, v.frames, v.bytes, v.tx_frames, v.tx_bytes, v.rx_frames, v.rx_bytes
  FROM iotlake.interval_volumes v
  JOIN pms_captures c ON c.site = v.site AND c.capture = v.capture
  JOIN pms_devices d ON d.site = v.site AND d.device = v.device
  WHERE v.dataset = :dataset AND v.source = 'imported'
),
per_scope AS (
  SELECT display, scope,
         avg(frames) AS frames_avg,
         CASE WHEN avg(frames) = 0 THEN 0D ELSE stddev_samp(frames) / avg(frames) END AS frames_cov,
         avg(bytes) AS bytes_avg,
         CASE WHEN avg(bytes) = 0 THEN 0D ELSE stddev_samp(bytes) / avg(bytes) END AS bytes_cov,
         avg(tx_frames) AS tx_frames_avg,
         CASE WHEN avg(tx_frames) = 0 THEN 0D ELSE stddev_samp(tx_frames) / avg(tx_frames) END AS tx_frames_cov,
         avg(tx_bytes) AS tx_bytes_avg,
         CASE WHEN avg(tx_bytes) = 0 THEN 0D ELSE stddev_samp(tx_bytes) / avg(tx_bytes) END AS tx_bytes_cov,
         avg(rx_frames) AS rx_frames_avg,
         CASE WHEN avg(rx_frames) = 0 THEN 0D ELSE stddev_samp(rx_frames) / avg(rx_frames) END AS rx_frames_cov,
         avg(rx_bytes) AS rx_bytes_avg,
         CASE WHEN avg(rx_bytes) = 0 THEN 0D ELSE stddev_samp(rx_bytes) / avg(rx_bytes) END AS rx_bytes_cov
  FROM volumes
  GROUP BY display, scope
)
SELECT a.display AS Device,
       a.frames_avg AS PacketAvg, a.frames_cov AS PacketCoV,
       a.bytes_avg AS ByteAvg, a.bytes_cov AS ByteCoV,
       a.tx_frames_avg AS TxPacketAvg, a.tx_frames_cov AS TxPacketCoV,
       a.tx_bytes_avg AS TxByteAvg, a.tx_bytes_cov AS TxByteCoV,
       a.rx_frames_avg AS RxPacketAvg, a.rx_frames_cov AS RxPacketCoV,
       a.rx_bytes_avg AS RxByteAvg, a.rx_bytes_cov AS RxByteCoV,
       l.frames_avg AS LanPacketAvg, l.frames_cov AS LanPacketCoV,
       l.bytes_avg AS LanByteAvg, l.bytes_cov AS LanByteCoV,
       l.tx_frames_avg AS LanTxPacketAvg, l.tx_frames_cov AS LanTxPacketCoV,
       l.tx_bytes_avg AS LanTxByteAvg, l.tx_bytes_cov AS LanTxByteCoV,
       l.rx_frames_avg AS LanRxPacketAvg, l.rx_frames_cov AS LanRxPacketCoV,
       l.rx_bytes_avg AS LanRxByteAvg, l.rx_bytes_cov AS LanRxByteCoV,
       w.frames_avg AS WanPacketAvg, w.frames_cov AS WanPacketCoV,
       w.bytes_avg AS WanByteAvg, w.bytes_cov AS WanByteCoV,
       w.tx_frames_avg AS WanTxPacketAvg, w.tx_frames_cov AS WanTxPacketCoV,
       w.tx_bytes_avg AS WanTxByteAvg, w.tx_bytes_cov AS WanTxByteCoV,
       w.rx_frames_avg AS WanRxPacketAvg, w.rx_frames_cov AS WanRxPacketCoV,
       w.rx_bytes_avg AS WanRxByteAvg, w.rx_bytes_cov AS WanRxByteCoV
FROM per_scope a
LEFT JOIN per_scope l ON l.display = a.display AND l.scope = 'LAN'
LEFT JOIN per_scope w ON w.display = a.display AND w.scope = 'WAN'
WHERE a.scope = 'ALL'
