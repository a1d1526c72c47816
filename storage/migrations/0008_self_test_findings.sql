-- Detector test records (Jiangsu evaluation item [10]: fire facilities inspected periodically, records
-- complete): the engine records every smoke alarm's self_test event, every test alarm and every
-- overdue battery self-check (GB 20517-2025 §5.11.1) as a compliance finding of check 'self_test'
-- (alerts/core/smoke.py), where a maintenance-records report reads them by device and date.

ALTER TABLE compliance_findings DROP CONSTRAINT compliance_findings_check_name_check;
ALTER TABLE compliance_findings ADD CONSTRAINT compliance_findings_check_name_check CHECK (check_name IN (
    'auto_cutoff', 'protection_config', 'fault_alarm', 'cctv_retention', 'linkage', 'rescue', 'self_test'));
