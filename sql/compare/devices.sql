-- devices: one device of one site of one dataset under one filter profile, with its vendor and kind, and its traffic volume, protocol-type mix and party-class mix over all its captures, next to the other devices of the same vendor and kind.
-- grain: dataset, site, device, profile
-- sources: iotlake.devices, iotlake.volume_stats, iotlake.protocol_type_distribution, iotlake.endpoint_class_distribution
-- A view over every dataset (lib/iotlake/compare.py registers it as iotlake_compare.devices); filters are
-- applied to the view, never written into this text. Vendor and kind come from bronze devices (the MAC map);
-- rows sort so that the same vendor and kind sit together across datasets and sites. Rates are per hour of the
-- device's interval grid (intervals × interval_s over its captures, capture = '*'), so captures of different
-- lengths compare. Shares are fractions: tx_share and wan_share of all frames; the protocol shares of the
-- device's application packets (protocol_type_distribution.packet_share, scope ALL) and non_application_share
-- of all its packets; the party shares of its endpoint packets (endpoint_class_distribution, capture '*').
-- frames_per_hour_vs_model is the device's rate over the mean rate of its vendor and kind under the same profile
-- (1.0: typical for the model; NULL when the map gives neither vendor nor kind).
WITH volumes AS (
  SELECT dataset, site, device, profile,
         max(CASE WHEN scope = 'ALL' THEN captures END) AS captures,
         max(CASE WHEN scope = 'ALL' THEN intervals * interval_s END) / 3600D AS hours,
         max(CASE WHEN scope = 'ALL' THEN frames_total END) AS frames,
         max(CASE WHEN scope = 'ALL' THEN bytes_total END) AS bytes,
         max(CASE WHEN scope = 'ALL' THEN tx_frames_total END) AS tx_frames,
         max(CASE WHEN scope = 'WAN' THEN frames_total END) AS wan_frames,
         max(CASE WHEN scope = 'ALL' THEN frames_cov END) AS frames_cov
  FROM iotlake.volume_stats
  WHERE capture = '*'
  GROUP BY dataset, site, device, profile
),
protocols AS (
  SELECT dataset, site, device, profile,
         max(CASE WHEN category = 'Encrypted' THEN packet_share END) AS encrypted_share,
         max(CASE WHEN category = 'Unencrypted' THEN packet_share END) AS unencrypted_share,
         max(CASE WHEN category = 'Discovery' THEN packet_share END) AS discovery_share,
         max(CASE WHEN category = 'Management' THEN packet_share END) AS management_share,
         max(CASE WHEN category = 'Unknown' THEN packet_share END) AS unknown_share,
         max(CASE WHEN category = 'Non-application' THEN all_packet_share END) AS non_application_share
  FROM iotlake.protocol_type_distribution
  WHERE capture = '*' AND scope = 'ALL'
  GROUP BY dataset, site, device, profile
),
parties AS (
  SELECT dataset, site, device, profile, endpoints, third_party_endpoints,
         packets_pct_first AS first_party_share, packets_pct_support AS support_share,
         packets_pct_third AS third_party_share, packets_pct_local AS local_share
  FROM iotlake.endpoint_class_distribution
  WHERE capture = '*'
),
keyed AS (
  SELECT dataset, site, device, profile FROM volumes
  UNION
  SELECT dataset, site, device, profile FROM protocols
  UNION
  SELECT dataset, site, device, profile FROM parties
),
joined AS (
  SELECT d.vendor, d.kind, k.dataset, k.site, k.device, k.profile,
         v.captures, v.hours, v.frames, v.bytes,
         try_divide(v.frames, v.hours) AS frames_per_hour,
         try_divide(v.bytes, v.hours) AS bytes_per_hour,
         v.frames_cov,
         try_divide(v.tx_frames, v.frames) AS tx_share,
         try_divide(v.wan_frames, v.frames) AS wan_share,
         p.encrypted_share, p.unencrypted_share, p.discovery_share, p.management_share, p.unknown_share,
         p.non_application_share,
         e.endpoints, e.third_party_endpoints,
         e.first_party_share, e.support_share, e.third_party_share, e.local_share
  FROM keyed k
  LEFT JOIN iotlake.devices d ON d.dataset = k.dataset AND d.site = k.site AND d.device = k.device
  LEFT JOIN volumes v ON v.dataset = k.dataset AND v.site = k.site AND v.device = k.device AND v.profile = k.profile
  LEFT JOIN protocols p ON p.dataset = k.dataset AND p.site = k.site AND p.device = k.device AND p.profile = k.profile
  LEFT JOIN parties e ON e.dataset = k.dataset AND e.site = k.site AND e.device = k.device AND e.profile = k.profile
)
SELECT vendor, kind, dataset, site, device, profile, captures,
       hours, frames, bytes,
       frames_per_hour,
       bytes_per_hour,
       CASE WHEN vendor IS NOT NULL OR kind IS NOT NULL THEN try_divide(frames_per_hour,
         avg(frames_per_hour) OVER (PARTITION BY lower(vendor), lower(kind), profile)) END AS frames_per_hour_vs_model,
       frames_cov,
       tx_share, wan_share,
       encrypted_share, unencrypted_share,
       discovery_share, management_share,
       unknown_share, non_application_share,
       endpoints, third_party_endpoints,
       first_party_share, support_share,
       third_party_share, local_share
FROM joined
