-- datasets: one dataset (a) against another (b) under one filter profile, for one device model (vendor and kind), all the vendor's kinds (kind = '*') or the whole dataset (vendor = kind = '*'): devices, mean rates and mix in each, and b over a.
-- grain: dataset_a, dataset_b, vendor, kind, profile
-- sources: iotlake_compare.devices (sql/compare/devices.sql)
-- A view over every ordered pair of different datasets (iotlake_compare.datasets); `iotlake compare datasets A B`
-- picks one pair. A model present in only one of the two has NULLs on the other side. Means are over devices
-- (each device weighs the same), across all sites of the dataset; *_ratio is b / a (NULL when a is 0 or absent).
WITH per_dataset AS (
  SELECT dataset, profile,
         CASE WHEN grouping(lower(vendor)) = 1 THEN '*' ELSE lower(vendor) END AS vendor_key,
         CASE WHEN grouping(lower(kind)) = 1 THEN '*' ELSE lower(kind) END AS kind_key,
         CASE WHEN grouping(lower(vendor)) = 1 THEN '*' ELSE min(vendor) END AS vendor,
         CASE WHEN grouping(lower(kind)) = 1 THEN '*' ELSE min(kind) END AS kind,
         count(*) AS devices, count(DISTINCT site) AS sites,
         avg(frames_per_hour) AS frames_per_hour, avg(bytes_per_hour) AS bytes_per_hour,
         avg(wan_share) AS wan_share, avg(encrypted_share) AS encrypted_share,
         avg(unencrypted_share) AS unencrypted_share, avg(third_party_share) AS third_party_share
  FROM iotlake_compare.devices
  GROUP BY GROUPING SETS (
    (dataset, profile, lower(vendor), lower(kind)),
    (dataset, profile, lower(vendor)),
    (dataset, profile)
  )
),
pairs AS (
  SELECT a.dataset AS dataset_a, b.dataset AS dataset_b
  FROM (SELECT DISTINCT dataset FROM per_dataset) a
  CROSS JOIN (SELECT DISTINCT dataset FROM per_dataset) b
  WHERE a.dataset <> b.dataset
),
keys AS (
  SELECT DISTINCT p.dataset_a, p.dataset_b, x.profile, x.vendor_key, x.kind_key
  FROM pairs p
  JOIN per_dataset x ON x.dataset = p.dataset_a OR x.dataset = p.dataset_b
)
SELECT k.dataset_a, k.dataset_b, coalesce(a.vendor, b.vendor) AS vendor, coalesce(a.kind, b.kind) AS kind,
       k.profile,
       a.devices AS devices_a, b.devices AS devices_b, a.sites AS sites_a, b.sites AS sites_b,
       a.frames_per_hour AS frames_per_hour_a, b.frames_per_hour AS frames_per_hour_b,
       try_divide(b.frames_per_hour, a.frames_per_hour) AS frames_per_hour_ratio,
       a.bytes_per_hour AS bytes_per_hour_a, b.bytes_per_hour AS bytes_per_hour_b,
       try_divide(b.bytes_per_hour, a.bytes_per_hour) AS bytes_per_hour_ratio,
       a.wan_share AS wan_share_a, b.wan_share AS wan_share_b,
       a.encrypted_share AS encrypted_share_a, b.encrypted_share AS encrypted_share_b,
       a.unencrypted_share AS unencrypted_share_a, b.unencrypted_share AS unencrypted_share_b,
       a.third_party_share AS third_party_share_a, b.third_party_share AS third_party_share_b
FROM keys k
LEFT JOIN per_dataset a
  ON a.dataset = k.dataset_a AND a.profile = k.profile AND a.vendor_key <=> k.vendor_key AND a.kind_key <=> k.kind_key
LEFT JOIN per_dataset b
  ON b.dataset = k.dataset_b AND b.profile = k.profile AND b.vendor_key <=> k.vendor_key AND b.kind_key <=> k.kind_key
