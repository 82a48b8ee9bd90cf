-- traffic_distribution: per device and filter profile, over one capture or all the device's captures ('*'): Tx/Rx and LAN/WAN totals and shares of packets and bytes.
-- grain: dataset, site, capture, device, profile
-- partition: dataset
-- sources: iotlake.volume_stats
-- The columns and denominators of the earlier overall-distribution.csv: every packet share is over the
-- device's overall packet total and every byte share over its overall byte total (lan_tx_packet_pct =
-- lan_tx_packet_total / packet_total, not / lan_packet_total). Shares are NULL when the total is 0.
WITH s AS (
  SELECT * FROM iotlake.volume_stats WHERE dataset = :dataset
)
SELECT a.dataset, a.site, a.capture, a.device, a.profile,
  a.frames_total AS packet_total,
  a.bytes_total AS byte_total,
  a.tx_frames_total AS tx_packet_total,
  a.tx_frames_total / nullif(a.frames_total, 0) AS tx_packet_pct,
  a.tx_bytes_total AS tx_byte_total,
  a.tx_bytes_total / nullif(a.bytes_total, 0) AS tx_byte_pct,
  a.rx_frames_total AS rx_packet_total,
  a.rx_frames_total / nullif(a.frames_total, 0) AS rx_packet_pct,
  a.rx_bytes_total AS rx_byte_total,
  a.rx_bytes_total / nullif(a.bytes_total, 0) AS rx_byte_pct,
  l.frames_total AS lan_packet_total,
  l.frames_total / nullif(a.frames_total, 0) AS lan_packet_pct,
  l.bytes_total AS lan_byte_total,
  l.bytes_total / nullif(a.bytes_total, 0) AS lan_byte_pct,
  l.tx_frames_total AS lan_tx_packet_total,
  l.tx_frames_total / nullif(a.frames_total, 0) AS lan_tx_packet_pct,
  l.tx_bytes_total AS lan_tx_byte_total,
  l.tx_bytes_total / nullif(a.bytes_total, 0) AS lan_tx_byte_pct,
  l.rx_frames_total AS lan_rx_packet_total,
  l.rx_frames_total / nullif(a.frames_total, 0) AS lan_rx_packet_pct,
  l.rx_bytes_total AS lan_rx_byte_total,
  l.rx_bytes_total / nullif(a.bytes_total, 0) AS lan_rx_byte_pct,
  w.frames_total AS wan_packet_total,
  w.frames_total / nullif(a.frames_total, 0) AS wan_packet_pct,
  w.bytes_total AS wan_byte_total,
  w.bytes_total / nullif(a.bytes_total, 0) AS wan_byte_pct,
  w.tx_frames_total AS wan_tx_packet_total,
  w.tx_frames_total / nullif(a.frames_total, 0) AS wan_tx_packet_pct,
  w.tx_bytes_total AS wan_tx_byte_total,
  w.tx_bytes_total / nullif(a.bytes_total, 0) AS wan_tx_byte_pct,
  w.rx_frames_total AS wan_rx_packet_total,
  w.rx_frames_total / nullif(a.frames_total, 0) AS wan_rx_packet_pct,
  w.rx_bytes_total AS wan_rx_byte_total,
  w.rx_bytes_total / nullif(a.bytes_total, 0) AS wan_rx_byte_pct
FROM s a
JOIN s l ON l.site = a.site AND l.capture = a.capture AND l.device = a.device AND l.profile = a.profile
  AND l.scope = 'LAN'
JOIN s w ON w.site = a.site AND w.capture = a.capture AND w.device = a.device AND w.profile = a.profile
  AND w.scope = 'WAN'
WHERE a.scope = 'ALL'
