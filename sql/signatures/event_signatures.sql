-- event_signatures: per device and event, the ordered flow fingerprints that recur in the event's training captures and are not the device's background.
-- grain: dataset, device, event, element_no
-- partition: dataset
-- sources: signature_training (view: dataset, site, capture, device, event), iotlake.flow_fingerprints, iotlake.flow_patterns
-- A fingerprint of the labelled device's flows joins the signature when it occurs in at least :min_support
-- of the event's training captures (1.0: every one, as the earlier tool requires) and is not background:
-- not a periodic pattern of the device in any capture of the dataset (gold.flow_patterns), and not a flow
-- that repeats on a timer inside the captures (it occurs at least twice in the median capture, with a median
-- gap of at least :repeat_gap_s seconds between its starts; an event's own repeated requests come in a burst).
-- Elements are ordered by their median start relative to the signature's first flow in each capture;
-- `window_s` is the longest such span seen in training plus :window_slack_s: detection looks for all
-- elements within it.
WITH training AS (
  SELECT DISTINCT dataset, site, capture, device, event FROM signature_training
),
sizes AS (
  SELECT device, event, count(*) AS captures FROM training GROUP BY device, event
),
flows AS (
  SELECT t.event, f.*,
         unix_micros(f.start_ts) / 1e6
           - lag(unix_micros(f.start_ts) / 1e6) OVER (PARTITION BY f.dataset, f.site, f.capture, f.device,
                                                                   f.fingerprint ORDER BY f.start_ts, f.flow_no)
           AS gap_s
  FROM training t
  JOIN iotlake.flow_fingerprints f
    ON f.dataset = t.dataset AND f.site = t.site AND f.capture = t.capture AND f.device = t.device
),
background AS (
  SELECT DISTINCT p.dataset, p.device, host_key(p.remote) AS remote_key, p.transport, p.application,
                  p.server_port AS fixed_port
  FROM iotlake.flow_patterns p
  WHERE p.periodic AND p.dataset IN (SELECT dataset FROM training)
),
per_capture AS (
  SELECT dataset, site, capture, device, event, fingerprint,
         count(*) AS occurrences, min(offset_s) AS first_offset_s
  FROM flows
  GROUP BY dataset, site, capture, device, event, fingerprint
),
candidates AS (
  SELECT f.dataset, f.device, f.event, f.fingerprint,
         count(DISTINCT f.site, f.capture) AS captures_with,
         mode(f.remote) AS remote, first(f.remote_key) AS remote_key, mode(f.scope) AS scope,
         first(f.transport) AS transport, first(f.application) AS application, first(f.fixed_port) AS fixed_port,
         first(f.device_role) AS device_role, first(f.initiator) AS initiator, first(f.app_fields) AS app_fields,
         min(f.packets) AS min_packets, max(f.packets) AS max_packets,
         min(f.bytes) AS min_bytes, max(f.bytes) AS max_bytes,
         percentile(f.gap_s, 0.5) AS median_gap_s
  FROM flows f
  GROUP BY f.dataset, f.device, f.event, f.fingerprint
),
repeats AS (
  SELECT device, event, fingerprint, percentile(occurrences, 0.5) AS median_occurrences
  FROM per_capture
  GROUP BY device, event, fingerprint
),
kept AS (
  SELECT c.*, s.captures, c.captures_with / s.captures AS support
  FROM candidates c
  JOIN sizes s ON s.device = c.device AND s.event = c.event
  JOIN repeats r ON r.device = c.device AND r.event = c.event AND r.fingerprint = c.fingerprint
  LEFT ANTI JOIN background b
    ON b.dataset = c.dataset AND b.device = c.device AND b.remote_key = c.remote_key
   AND b.transport = c.transport AND b.application = c.application
   AND b.fixed_port <=> c.fixed_port
  WHERE c.captures_with / s.captures >= :min_support
    AND NOT (r.median_occurrences >= 2 AND coalesce(c.median_gap_s, 0) >= :repeat_gap_s)
),
relative AS (
  SELECT p.device, p.event, p.fingerprint,
         p.first_offset_s - min(p.first_offset_s) OVER (PARTITION BY p.dataset, p.site, p.capture, p.device,
                                                                     p.event) AS relative_s
  FROM per_capture p
  JOIN kept k ON k.dataset = p.dataset AND k.device = p.device AND k.event = p.event
             AND k.fingerprint = p.fingerprint
),
timing AS (
  SELECT device, event, fingerprint, percentile(relative_s, 0.5) AS median_offset_s
  FROM relative
  GROUP BY device, event, fingerprint
),
spans AS (
  SELECT device, event, max(relative_s) AS span_s FROM relative GROUP BY device, event
)
SELECT k.dataset, k.device, k.event,
       row_number() OVER (PARTITION BY k.dataset, k.device, k.event
                          ORDER BY t.median_offset_s, k.remote_key, k.fingerprint) AS element_no,
       count(*) OVER (PARTITION BY k.dataset, k.device, k.event) AS elements,
       k.fingerprint, k.remote, k.remote_key, k.scope, k.transport, k.application, k.fixed_port, k.device_role,
       k.initiator, k.app_fields, k.support, k.captures_with, k.captures AS training_captures,
       t.median_offset_s, sp.span_s + :window_slack_s AS window_s,
       k.min_packets, k.max_packets, k.min_bytes, k.max_bytes
FROM kept k
JOIN timing t ON t.device = k.device AND t.event = k.event AND t.fingerprint = k.fingerprint
JOIN spans sp ON sp.device = k.device AND sp.event = k.event
