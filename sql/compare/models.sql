-- models: one device model (vendor and kind) at one site of one dataset under one filter profile, or all the vendor's kinds there (kind = '*'): how many devices and their mean volume, protocol-type mix and party-class mix.
-- grain: vendor, kind, dataset, site, profile
-- sources: iotlake_compare.devices (sql/compare/devices.sql)
-- A view over every dataset (iotlake_compare.models). Vendor and kind match case-insensitively (the first
-- spelling in sort order is shown); devices without vendor and kind are left out. Rates and shares are means
-- over the devices (each device weighs the same); frames and bytes are sums. frames_per_hour_vs_vendor_kind
-- compares the site's mean rate with the mean over every site of every dataset (1.0: typical).
WITH models AS (
  SELECT min(vendor) AS vendor, coalesce(min(kind), '*') AS kind, dataset, site, profile,
         grouping(lower(kind)) = 1 AS all_kinds,
         count(*) AS devices, sum(frames) AS frames, sum(bytes) AS bytes,
         avg(frames_per_hour) AS frames_per_hour, avg(bytes_per_hour) AS bytes_per_hour,
         avg(tx_share) AS tx_share, avg(wan_share) AS wan_share,
         avg(encrypted_share) AS encrypted_share, avg(unencrypted_share) AS unencrypted_share,
         avg(discovery_share) AS discovery_share, avg(management_share) AS management_share,
         avg(first_party_share) AS first_party_share, avg(support_share) AS support_share,
         avg(third_party_share) AS third_party_share, avg(local_share) AS local_share
  FROM iotlake_compare.devices
  WHERE vendor IS NOT NULL OR kind IS NOT NULL
  GROUP BY GROUPING SETS (
    (lower(vendor), lower(kind), dataset, site, profile),
    (lower(vendor), dataset, site, profile)
  )
)
SELECT vendor, CASE WHEN all_kinds THEN '*' ELSE kind END AS kind, dataset, site, profile, devices, frames, bytes,
       frames_per_hour, bytes_per_hour,
       try_divide(frames_per_hour, avg(frames_per_hour) OVER (
         PARTITION BY lower(vendor), CASE WHEN all_kinds THEN '*' ELSE lower(kind) END, profile))
         AS frames_per_hour_vs_vendor_kind,
       tx_share, wan_share,
       encrypted_share, unencrypted_share,
       discovery_share, management_share,
       first_party_share, support_share,
       third_party_share, local_share
FROM models
