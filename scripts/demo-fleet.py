#!/usr/bin/env python3
"""Creates a small fleet in a running moto server for trying reflex without AWS.

Usage: scripts/demo-fleet.py [ENDPOINT] — builds classic ELB "web-elb" with four instances and stops one,
which moto then reports OutOfService.
"""
import sys

import boto3

endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
elb = boto3.client("elb", **kw)
ids = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12345678", MinCount=4, MaxCount=4)["Instances"]]
elb.create_load_balancer(
    LoadBalancerName="web-elb",
    Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
    AvailabilityZones=["us-east-1a"],
)
elb.register_instances_with_load_balancer(LoadBalancerName="web-elb", Instances=[{"InstanceId": i} for i in ids])
ec2.stop_instances(InstanceIds=[ids[0]])
for state in elb.describe_instance_health(LoadBalancerName="web-elb")["InstanceStates"]:
    print(state["InstanceId"], state["State"])
