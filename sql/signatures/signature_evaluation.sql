-- signature_evaluation: per device and event, how well the signature learned on the training captures finds the event in the other captures: a confusion count per capture, precision and recall.
-- grain: dataset, device, event
-- partition: dataset
-- sources: signature_split (view: dataset, site, capture, device, event, training), signatures (view), detections (view: event_detections rows)
-- The captures of a signature's own device and event that were not used to learn it are its positives; every
-- labelled capture of another device or event is a negative (training captures of other signatures
-- included: they were not used for this one). A capture counts once, however often the signature fires in
-- it. `false_positives_other_devices` are the negatives of other devices it fired on. A device and event
-- whose training captures share no flow outside the background has no signature (elements 0, recall 0).
WITH events AS (
  SELECT dataset, device, event,
         count_if(training) AS training_captures, count_if(NOT training) AS test_captures
  FROM signature_split
  GROUP BY dataset, device, event
),
learned AS (
  SELECT device, event, max(elements) AS elements FROM signatures GROUP BY device, event
),
cases AS (
  SELECT e.dataset, e.device AS signature_device, e.event AS signature_event, c.site, c.capture,
         c.device AS capture_device, c.device = e.device AND c.event = e.event AS positive
  FROM events e
  JOIN signature_split c ON c.dataset = e.dataset
  WHERE NOT (c.training AND c.device = e.device AND c.event = e.event)
),
fired AS (
  SELECT DISTINCT dataset, site, capture, signature_device, event FROM detections
),
scored AS (
  SELECT c.*, f.capture IS NOT NULL AS hit
  FROM cases c
  LEFT JOIN fired f
    ON f.dataset = c.dataset AND f.site = c.site AND f.capture = c.capture
   AND f.signature_device = c.signature_device AND f.event = c.signature_event
),
counts AS (
  SELECT dataset, signature_device AS device, signature_event AS event,
         count_if(positive AND hit) AS true_positives,
         count_if(positive AND NOT hit) AS false_negatives,
         count_if(NOT positive AND hit) AS false_positives,
         count_if(NOT positive AND hit AND capture_device <> signature_device) AS false_positives_other_devices,
         count_if(NOT positive) AS negatives
  FROM scored
  GROUP BY dataset, signature_device, signature_event
)
SELECT e.dataset, e.device, e.event, coalesce(l.elements, 0) AS elements, e.training_captures, e.test_captures,
       c.true_positives, c.false_negatives, c.false_positives, c.false_positives_other_devices, c.negatives,
       CASE WHEN c.true_positives + c.false_positives > 0
            THEN c.true_positives / (c.true_positives + c.false_positives) END AS precision,
       CASE WHEN e.test_captures > 0 THEN c.true_positives / e.test_captures END AS recall
FROM events e
JOIN counts c ON c.dataset = e.dataset AND c.device = e.device AND c.event = e.event
LEFT JOIN learned l ON l.device = e.device AND l.event = e.event
