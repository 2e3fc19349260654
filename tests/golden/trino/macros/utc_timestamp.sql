select cast(event_timestamp as timestamp) as t from "golden"."main"."fv_drv"
