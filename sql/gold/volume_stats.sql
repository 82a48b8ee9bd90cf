-- volume_stats: per device, filter profile and scope, over one capture or over all the device's captures ('*'): total, mean, sample standard deviation and CoV of each volume metric per interval.
-- grain: dataset, site, capture, device, profile, scope
-- partition: dataset
-- sources: iotlake.interval_volumes
-- capture = '*' concatenates the device's captures in the site (the earlier "Combined" files: capture 1's
-- intervals followed by capture 2's). Statistics are over interval rows, silent intervals (zeros) included.
-- <metric>_std is the sample standard deviation (ddof 1); <metric>_cov = std / mean, 0 when the mean is 0, and
-- NULL (not 0, not NaN) when there is a single interval, since one value has no sample deviation.
SELECT dataset, site, coalesce(capture, '*') AS capture, device, profile, scope,
       count(DISTINCT capture) AS captures,
       count(*) AS intervals,
       count_if(partial) AS partial_intervals,
       min(interval_s) AS interval_s,
       min(alignment) AS alignment,
       min(interval_start) AS first_interval,
       max(interval_start) AS last_interval,
       sum(frames) AS frames_total, avg(frames) AS frames_mean, stddev_samp(frames) AS frames_std,
       CASE WHEN count(*) < 2 THEN NULL WHEN avg(frames) = 0 THEN 0D ELSE stddev_samp(frames) / avg(frames) END AS frames_cov,
       sum(bytes) AS bytes_total, avg(bytes) AS bytes_mean, stddev_samp(bytes) AS bytes_std,
       CASE WHEN count(*) < 2 THEN NULL WHEN avg(bytes) = 0 THEN 0D ELSE stddev_samp(bytes) / avg(bytes) END AS bytes_cov,
       sum(tx_frames) AS tx_frames_total, avg(tx_frames) AS tx_frames_mean, stddev_samp(tx_frames) AS tx_frames_std,
       CASE WHEN count(*) < 2 THEN NULL WHEN avg(tx_frames) = 0 THEN 0D ELSE stddev_samp(tx_frames) / avg(tx_frames) END AS tx_frames_cov,
       sum(tx_bytes) AS tx_bytes_total, avg(tx_bytes) AS tx_bytes_mean, stddev_samp(tx_bytes) AS tx_bytes_std,
       CASE WHEN count(*) < 2 THEN NULL WHEN avg(tx_bytes) = 0 THEN 0D ELSE stddev_samp(tx_bytes) / avg(tx_bytes) END AS tx_bytes_cov,
       sum(rx_frames) AS rx_frames_total, avg(rx_frames) AS rx_frames_mean, stddev_samp(rx_frames) AS rx_frames_std,
       CASE WHEN count(*) < 2 THEN NULL WHEN avg(rx_frames) = 0 THEN 0D ELSE stddev_samp(rx_frames) / avg(rx_frames) END AS rx_frames_cov,
       sum(rx_bytes) AS rx_bytes_total, avg(rx_bytes) AS rx_bytes_mean, stddev_samp(rx_bytes) AS rx_bytes_std,
       CASE WHEN count(*) < 2 THEN NULL WHEN avg(rx_bytes) = 0 THEN 0D ELSE stddev_samp(rx_bytes) / avg(rx_bytes) END AS rx_bytes_cov
FROM iotlake.interval_volumes
WHERE dataset = :dataset
GROUP BY GROUPING SETS (
  (dataset, site, device, profile, scope, capture),
  (dataset, site, device, profile, scope)
)
