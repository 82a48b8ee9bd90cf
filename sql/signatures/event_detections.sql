-- event_detections: one row per occurrence of an event signature in a capture: the device whose flows matched, the signature's device and event, when, and the matched flows.
-- grain: dataset, site, capture, device, signature_dataset, signature_device, event, detected_at
-- partition: dataset
-- sources: signatures (view: rows of event_signatures), detection_scope (view: dataset, site, capture), iotlake.flow_fingerprints
-- A signature matches flows of any device (a device of the same model behaves the same), but all its
-- elements must come from one device's flows. An occurrence is anchored at a matched flow: every element
-- of the signature has a flow with its fingerprint starting within `window_s` seconds from the anchor.
-- Of anchors that follow one another within the window, only the first is reported, so one event is one row.
WITH sig AS (
  SELECT dataset AS signature_dataset, device AS signature_device, event, element_no, elements, fingerprint,
         window_s
  FROM signatures
),
target AS (
  SELECT f.dataset, f.site, f.capture, f.device, f.flow_no, f.fingerprint, f.start_ts,
         unix_micros(f.start_ts) AS us
  FROM iotlake.flow_fingerprints f
  JOIN detection_scope s ON s.dataset = f.dataset AND s.site = f.site AND s.capture = f.capture
  WHERE f.dataset = :dataset
),
matched AS (
  SELECT t.dataset, t.site, t.capture, t.device, t.flow_no, t.start_ts, t.us, s.signature_dataset,
         s.signature_device, s.event, s.element_no, s.elements, s.window_s
  FROM target t
  JOIN sig s ON s.fingerprint = t.fingerprint
),
anchored AS (
  SELECT a.dataset, a.site, a.capture, a.device, a.signature_dataset, a.signature_device, a.event,
         a.start_ts AS detected_at, a.us, a.elements, a.window_s,
         count(DISTINCT b.element_no) AS elements_matched,
         array_sort(collect_set(named_struct('element_no', b.element_no, 'flow_no', b.flow_no))) AS matched_flows,
         (max(b.us) - a.us) / 1e6 AS span_s
  FROM matched a
  JOIN matched b
    ON b.dataset = a.dataset AND b.site = a.site AND b.capture = a.capture AND b.device = a.device
   AND b.signature_dataset = a.signature_dataset AND b.signature_device = a.signature_device
   AND b.event = a.event
   AND b.us >= a.us AND b.us <= a.us + CAST(a.window_s * 1e6 AS BIGINT)
  GROUP BY a.dataset, a.site, a.capture, a.device, a.signature_dataset, a.signature_device, a.event,
           a.start_ts, a.us, a.elements, a.window_s
),
complete AS (
  SELECT *,
         lag(us) OVER (PARTITION BY dataset, site, capture, device, signature_dataset, signature_device, event
                       ORDER BY us) AS previous_us
  FROM anchored
  WHERE elements_matched = elements
)
SELECT dataset, site, capture, device, signature_dataset, signature_device, event, detected_at, span_s,
       elements, matched_flows
FROM complete
WHERE previous_us IS NULL OR us - previous_us > CAST(window_s * 1e6 AS BIGINT)
